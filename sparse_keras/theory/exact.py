"""Eq. 1–3 of the paper, exact: how many random binary vectors overlap, and match, a fixed one.

A fixed binary vector `x` has `w` of its `n` bits on; a random `y` has `a` bits on, all
such vectors equally likely. Their dot product is the number of on-bits they share (the
overlap), which is hypergeometric. `overlap_set_size` (Eq. 1) and `match_probability`
(Eq. 3) are exact, computed with integers, for any `n`; `log_overlap_set_size` and
`log_match_probability` work in log space, vectorised, far below the float range;
`overlap_distribution` is the whole distribution of the overlap (also the weights of the
Eq. 4 estimator in `sparse_keras.theory.estimate`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from sparse_keras import validation


def _scalar_or_array(array: np.ndarray) -> float | np.ndarray:
    """Returns a Python float for 0-d results and the array otherwise."""
    return float(array) if np.ndim(array) == 0 else array


def overlap_set_size(n: ArrayLike, w: ArrayLike, b: ArrayLike, a: ArrayLike) -> int | np.ndarray:
    """Counts the vectors with `a` of `n` bits on that share exactly `b` bits with `x` (Eq. 1).

    `x` is any fixed binary vector with `w` of its `n` bits on. A vector `y` with `a`
    bits on overlaps it in `b` bits when `b` of its bits fall among the `w` on-bits of
    `x` and the other `a - b` among the `n - w` off-bits:
    `|Ω(x, b, a)| = C(w, b) · C(n − w, a − b)` (zero when `b > w` or `a − b > n − w`).

    Args:
        n: Vector length.
        w: Number of on-bits of the fixed vector `x` (the paper's `|x_i|`).
        b: Overlap size.
        a: Number of on-bits of the counted vectors (the paper's `k`, or `|x_j|`).

    Returns:
        An exact Python `int` for scalar arguments; for array arguments an `object`
        array of Python ints of the broadcast shape.

    Raises:
        ValueError: if an argument is not a non-negative integer, or `w > n`, `a > n`.

    Example:

    >>> [overlap_set_size(4, 2, b, 2) for b in range(3)]
    [1, 4, 1]
    """
    n, w, b, a = _check_overlap_args(n, w, b, a)
    if all(np.ndim(v) == 0 for v in (n, w, b, a)):
        return _overlap_set_size_int(int(n), int(w), int(b), int(a))
    return np.frompyfunc(_overlap_set_size_int, 4, 1)(n, w, b, a)


def _check_overlap_args(n, w, b, a):
    n = validation.integers("n", n)
    w = validation.integers("w", w)
    b = validation.integers("b", b)
    a = validation.integers("a", a)
    validation.at_most("w", w, "n", n, "x cannot have more on-bits than bits")
    validation.at_most("a", a, "n", n, "a vector cannot have more on-bits than bits")
    return n, w, b, a


def _overlap_set_size_int(n: int, w: int, b: int, a: int) -> int:
    if b > a or b > w:
        return 0
    return math.comb(w, b) * math.comb(n - w, a - b)


def _exact_match_fraction(n: int, a: int, w: int, theta: int) -> tuple[int, int]:
    """Returns integers (count, total) with P(x·y >= theta) = count / total exactly.

    Uses the symmetry C(w, b)·C(n−w, a−b) / C(n, a) = C(a, b)·C(n−a, w−b) / C(n, w)
    to put the smaller of `a`, `w` in the binomials' lower index: with w = 24 every
    integer stays small however large n is, and the sum runs over the shorter side of
    the tail (the complement is exact in integers, so nothing cancels).
    """
    draws, marked = (a, w) if a <= w else (w, a)
    total = math.comb(n, draws)
    lowest = max(0, draws - (n - marked))  # overlaps below this are impossible
    if theta > draws:
        return 0, total
    if theta <= lowest:
        return total, total

    def term(b: int) -> int:
        return math.comb(marked, b) * math.comb(n - marked, draws - b)

    if draws - theta + 1 <= theta - lowest:
        return sum(term(b) for b in range(theta, draws + 1)), total
    return total - sum(term(b) for b in range(lowest, theta)), total


def _check_match_args(n, a, w, theta):
    n = validation.integers("n", n)
    a = validation.integers("a", a)
    w = validation.integers("w", w)
    theta = validation.integers("theta", theta)
    validation.at_most("a", a, "n", n, "a vector cannot have more on-bits than bits")
    validation.at_most("w", w, "n", n, "x cannot have more on-bits than bits")
    validation.at_most("theta", theta, "w", w, "the dot product with x never exceeds |x| = w")
    return n, a, w, theta


def match_probability(
    n: ArrayLike, a: ArrayLike, w: ArrayLike, theta: ArrayLike
) -> float | np.ndarray:
    """Probability that a random binary vector matches a fixed one (Eq. 3).

    `y` has `a` of `n` bits on, all such vectors equally likely; `x` is fixed with `w`
    bits on. `P(x·y >= θ) = Σ_{b=θ}^{min(w,a)} |Ω(x, b, a)| / C(n, a)`, the upper tail of
    a hypergeometric distribution. The sum is done in exact integer arithmetic and
    rounded once (correctly) to a float, so it is accurate for any `n` down to the
    smallest normal float (~2e-308); use `log_match_probability` below that.

    Args:
        n: Vector length (int or array).
        a: On-bits of the random vector `y` (int or array); `a <= n`.
        w: On-bits of the fixed vector `x` (the paper uses 24); `w <= n`.
        theta: Match threshold; `0 <= theta <= w` (the paper uses 12).

    Returns:
        A float for scalar arguments, else a float64 array of the broadcast shape.

    Raises:
        ValueError: for non-integers, negative values, `a > n`, `w > n` or `theta > w`.

    Example:

    >>> match_probability(n=4, a=2, w=2, theta=1)  # 5 of the 6 pairs of bits hit x
    0.8333333333333334
    >>> match_probability(n=[500, 1000, 2000], a=24, w=24, theta=12)
    array([1.24075768e-11, 3.26685978e-15, 8.26438648e-19])
    """
    n, a, w, theta = _check_match_args(n, a, w, theta)

    def one(n_, a_, w_, theta_):
        count, total = _exact_match_fraction(int(n_), int(a_), int(w_), int(theta_))
        return count / total  # int / int is correctly rounded in Python

    if all(np.ndim(v) == 0 for v in (n, a, w, theta)):
        return one(n, a, w, theta)
    return np.frompyfunc(one, 4, 1)(n, a, w, theta).astype(np.float64)


# ----------------------------------------------------------------------------------------
# Eq. 1–3 in log space (vectorised)
# ----------------------------------------------------------------------------------------

# Below this lower index log C(N, j) is a sum of j logs of ratios, accurate to a few ulps
# of each log; above it lgamma differences are used, whose error grows like eps·N·log N
# (about 1e-10 relative at N = 1e5), because exp() turns absolute log error into
# relative error.
_LOG_COMB_SUM_LIMIT = 256

_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _log_comb(N, j) -> np.ndarray:
    """Natural log of C(N, j), elementwise, -inf where C(N, j) = 0."""
    N, j = np.broadcast_arrays(np.asarray(N, np.int64), np.asarray(j, np.int64))
    valid = (j >= 0) & (j <= N)
    short = np.where(valid, np.minimum(j, N - j), 0)
    out = np.where(valid, 0.0, -np.inf)
    small = valid & (short <= _LOG_COMB_SUM_LIMIT)
    if small.any():
        n_small, j_small = N[small].astype(np.float64), short[small]
        acc = np.zeros(n_small.shape)
        for i in range(int(j_small.max(initial=0))):
            live = j_small > i
            acc[live] += np.log((n_small[live] - i) / (j_small[live] - i))
        out[small] = acc
    large = valid & ~small
    if large.any():
        n_large, j_large = N[large], short[large]
        out[large] = (
            _lgamma(n_large + 1.0) - _lgamma(j_large + 1.0) - _lgamma(n_large - j_large + 1.0)
        ).astype(np.float64)
    return out


def log_overlap_set_size(
    n: ArrayLike, w: ArrayLike, b: ArrayLike, a: ArrayLike
) -> float | np.ndarray:
    """Natural log of `overlap_set_size(n, w, b, a)` (Eq. 1), vectorised.

    Args:
        n: Vector length, as in `overlap_set_size`; an int or an array.
        w: On-bits of the fixed vector; an int or an array.
        b: Overlap size; an int or an array.
        a: On-bits of the counted vectors; an int or an array (all four broadcast).

    Returns:
        A float (scalar arguments) or float64 array; `-inf` where the count is zero.

    Example:

    >>> round(float(np.exp(log_overlap_set_size(4, 2, 1, 2))), 9)
    4.0
    """
    n, w, b, a = _check_overlap_args(n, w, b, a)
    return _scalar_or_array(_log_comb(w, b) + _log_comb(np.asarray(n) - w, np.asarray(a) - b))


def _log_overlap_pmf(n, a, w, b) -> np.ndarray:
    """log P(overlap = b) for a random a-subset and a fixed w-subset of n positions.

    Written in the symmetric form C(M, b)·C(n−M, m−b) / C(n, m) with m = min(a, w) and
    M = max(a, w), so every binomial has a lower index <= m and takes the accurate path
    of `_log_comb` when one of the two vectors is sparse.
    """
    n, a, w, b = (np.asarray(v, np.int64) for v in (n, a, w, b))
    draws, marked = np.minimum(a, w), np.maximum(a, w)
    return _log_comb(marked, b) + _log_comb(n - marked, draws - b) - _log_comb(n, draws)


def log_match_probability(
    n: ArrayLike, a: ArrayLike, w: ArrayLike, theta: ArrayLike
) -> float | np.ndarray:
    """Natural log of `match_probability(n, a, w, theta)` (Eq. 3), vectorised in log space.

    Sums the hypergeometric terms with a running log-sum-exp, so nothing overflows and
    values far below the float range (e.g. `log P = -2000`) are fine. It is accurate to
    about 1e-13 relative (in P) when `min(a, w) <= 256`, else to roughly
    `1e-16 · n · log(n)`.

    Args:
        n: Vector length, as in `match_probability`; an int or an array.
        a: On-bits of the random vector; an int or an array.
        w: On-bits of the fixed vector; an int or an array.
        theta: Match threshold; an int or an array (all four broadcast).

    Returns:
        A float or float64 array; `-inf` where no vector can match (`theta > a`).

    Example:

    >>> round(float(log_match_probability(100_000, 24, 24, 12)), 6)
    -88.54796
    """
    n, a, w, theta = _check_match_args(n, a, w, theta)
    n, a, w, theta = np.broadcast_arrays(*(np.asarray(v, np.int64) for v in (n, a, w, theta)))
    draws = np.minimum(a, w)
    acc = np.full(n.shape, -np.inf)
    if n.size:
        # One pass per overlap value keeps memory at the size of the output.
        for b in range(int(theta.min()), int(draws.max()) + 1):
            live = (b >= theta) & (b <= draws)
            if live.any():
                term = _log_overlap_pmf(n[live], a[live], w[live], b)
                acc[live] = np.logaddexp(acc[live], term)
    # A complete tail sums to exactly 1; rounding could push its log a hair above 0.
    return _scalar_or_array(np.minimum(acc, 0.0))


def overlap_distribution(n: ArrayLike, a: ArrayLike, w: int) -> np.ndarray:
    """P(overlap = b), b = 0..w, of a random `a`-of-`n` vector with a fixed `w`-of-`n` one.

    The hypergeometric distribution behind Eq. 1–3 (and the weights of Eq. 4).

    Args:
        n: Vector length (int or array).
        a: On-bits of the random vector (int or array, broadcast with `n`).
        w: On-bits of the fixed vector (int).

    Returns:
        float64 array of shape `broadcast(n, a).shape + (w + 1,)`.

    Example:

    >>> overlap_distribution(4, 2, 2).round(4).tolist()
    [0.1667, 0.6667, 0.1667]
    """
    n = validation.integers("n", n)
    a = validation.integers("a", a)
    w = validation.integers("w", w)
    if np.ndim(w):
        raise ValueError(f"w must be a single integer, got {w!r}.")
    validation.at_most("a", a, "n", n, "a vector cannot have more on-bits than bits")
    validation.at_most("w", w, "n", n, "x cannot have more on-bits than bits")
    b = np.arange(w + 1)
    return np.exp(_log_overlap_pmf(np.asarray(n)[..., None], np.asarray(a)[..., None], w, b))
