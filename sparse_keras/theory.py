"""Match statistics of random sparse vectors: Eq. 1–3 of the paper, Monte-Carlo, Fig. 2 and 3.

Section 2 of "How Can We Be So Dense?" asks how likely a random vector is to match a
fixed one, i.e. to have a dot product at or above a threshold θ. For binary vectors
the answer is a hypergeometric tail (Eq. 1–3), computed here exactly, with integers
or in log space, for any n. For scalar vectors (Fig. 3) there is no closed form; this
module simulates it and adds an estimator the paper only sketches (Eq. 4): the exact
distribution of the overlap times a simulated match probability per overlap size,
which reaches probabilities far below what plain simulation can see.

Only NumPy and the standard library are needed at runtime; matplotlib (plots) and
tqdm (progress bars) are imported by the functions that use them.

Example:

>>> from sparse_keras import theory
>>> theory.overlap_set_size(n=4, w=2, b=1, a=2)
4
>>> theory.match_probability(n=1000, a=24, w=24, theta=12)  # Eq. 3, exact
3.2668597803087046e-15
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import statistics
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DENSE",
    "MatchEstimate",
    "OverlapEstimate",
    "Sweep",
    "estimate_scalar_match_probability",
    "figure2",
    "figure2_sweep",
    "figure3",
    "figure3_sweeps",
    "log_match_probability",
    "log_overlap_set_size",
    "match_probability",
    "overlap_distribution",
    "overlap_match_probabilities",
    "overlap_set_size",
    "save_figure",
    "scalar_threshold",
    "simulate_binary_matches",
    "simulate_scalar_matches",
]

#: Marker for "a = n / 2" (a dense vector) in the `a_values` of the figure sweeps.
DENSE = "dense"

# Default sweeps of the two figures (SPEC §1).
FIGURE_A_VALUES: tuple[int | str, ...] = (24, 32, 48, 64, 128, 256, DENSE)
# Simulated points; the theory curves are drawn on a finer grid between the same ends.
# Fig. 2 spans the n of the authors' plot (300..3500), Fig. 3 theirs (250..2500), as in
# numenta/nupic.research projects/sdr_math.
FIGURE2_N_VALUES: tuple[int, ...] = tuple(range(100, 3501, 200))
FIGURE3_N_VALUES: tuple[int, ...] = tuple(range(100, 2501, 200))
FIGURE3_SCALES: tuple[float, ...] = tuple(float(s) for s in range(1, 11))
FIGURE3_SCALE_A_VALUES: tuple[int, ...] = (24, 32, 48, 64, 128, 256)


# ----------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------


def _integers(name: str, value, minimum: int = 0):
    """Returns `value` as an int (scalar) or int64 array, or raises naming the bad value.

    Integer-valued floats (e.g. `1000.0`, or `np.linspace` output) are accepted because
    they hold an exact count; anything else that is not a whole number is refused.
    """
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if isinstance(value, numbers.Integral):
        if value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        return int(value)
    if isinstance(value, numbers.Real):
        if not (math.isfinite(value) and float(value).is_integer()) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        return int(value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name} must be an integer or an array of integers, got {value!r}."
        ) from error
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise ValueError(f"{name} must be an integer or an array of integers, got {value!r}.")
    flat = array.ravel()
    if array.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.round(flat))
        if bad.any():
            raise ValueError(
                f"{name} must hold integers, got {flat[bad][0].item()!r} in {value!r}."
            )
    if (flat < minimum).any():
        raise ValueError(
            f"{name} must hold integers >= {minimum}, got {flat[flat < minimum][0].item()!r} in {value!r}."
        )
    return array.astype(np.int64)


def _at_most(name: str, value, bound_name: str, bound, why: str) -> None:
    """Raises if `value > bound` anywhere (both broadcast), naming the first offender."""
    value_b, bound_b = np.broadcast_arrays(np.asarray(value), np.asarray(bound))
    bad = value_b > bound_b
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()
        raise ValueError(
            f"{name} must be <= {bound_name} ({why}), got {name}={value_b[index].item()!r} "
            f"with {bound_name}={bound_b[index].item()!r}."
        )


def _positive_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}.")
    return float(value)


def _confidence(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), got {value!r}.")
    return float(value)


def _z_score(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _scalar_or_array(array: np.ndarray):
    """Returns a Python float for 0-d results and the array otherwise."""
    return float(array) if np.ndim(array) == 0 else array


# ----------------------------------------------------------------------------------------
# Eq. 1–3, exact
# ----------------------------------------------------------------------------------------


def overlap_set_size(n, w, b, a):
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
    n = _integers("n", n)
    w = _integers("w", w)
    b = _integers("b", b)
    a = _integers("a", a)
    _at_most("w", w, "n", n, "x cannot have more on-bits than bits")
    _at_most("a", a, "n", n, "a vector cannot have more on-bits than bits")
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
    n = _integers("n", n)
    a = _integers("a", a)
    w = _integers("w", w)
    theta = _integers("theta", theta)
    _at_most("a", a, "n", n, "a vector cannot have more on-bits than bits")
    _at_most("w", w, "n", n, "x cannot have more on-bits than bits")
    _at_most("theta", theta, "w", w, "the dot product with x never exceeds |x| = w")
    return n, a, w, theta


def match_probability(n, a, w, theta):
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


def log_overlap_set_size(n, w, b, a):
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


def log_match_probability(n, a, w, theta):
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


def overlap_distribution(n, a, w) -> np.ndarray:
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
    n = _integers("n", n)
    a = _integers("a", a)
    w = _integers("w", w)
    if np.ndim(w):
        raise ValueError(f"w must be a single integer, got {w!r}.")
    _at_most("a", a, "n", n, "a vector cannot have more on-bits than bits")
    _at_most("w", w, "n", n, "x cannot have more on-bits than bits")
    b = np.arange(w + 1)
    return np.exp(_log_overlap_pmf(np.asarray(n)[..., None], np.asarray(a)[..., None], w, b))


# ----------------------------------------------------------------------------------------
# Monte-Carlo
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MatchEstimate:
    """A Monte-Carlo match frequency with its confidence interval.

    The interval is Wilson's score interval, closed-form and with good coverage even
    for a handful of hits. With zero hits the estimate is no evidence of probability
    0: `ci_high` (`≈ 3.84 / trials` at 95%, close to the "rule of three" 3 / trials)
    is then the meaningful number, and `is_upper_bound` is True.

    Attributes:
        hits: Trials whose dot product reached the threshold.
        trials: Number of trials.
        confidence: Confidence level of the interval.
        method: How the trials were drawn (see the simulation functions).
        probability: `hits / trials`.
        ci_low, ci_high: The confidence interval.
    """

    hits: int
    trials: int
    confidence: float = 0.95
    method: str = ""
    probability: float = dataclasses.field(init=False)
    ci_low: float = dataclasses.field(init=False)
    ci_high: float = dataclasses.field(init=False)

    def __post_init__(self):
        if not 0 <= self.hits <= self.trials or self.trials < 1:
            raise ValueError(
                f"need 0 <= hits <= trials and trials >= 1, got {self.hits} / {self.trials}."
            )
        z = _z_score(_confidence(self.confidence))
        p, t = self.hits / self.trials, self.trials
        scale = 1.0 + z * z / t
        centre = (p + z * z / (2 * t)) / scale
        half = z * math.sqrt(p * (1.0 - p) / t + z * z / (4 * t * t)) / scale
        # With 0 (or all) hits the bound is exact in theory; clamp float round-off.
        low = 0.0 if self.hits == 0 else max(0.0, centre - half)
        high = 1.0 if self.hits == self.trials else min(1.0, centre + half)
        object.__setattr__(self, "probability", p)
        object.__setattr__(self, "ci_low", low)
        object.__setattr__(self, "ci_high", high)

    @property
    def is_upper_bound(self) -> bool:
        """True when there were no hits, so only `ci_high` says anything."""
        return self.hits == 0

    @property
    def upper_bound(self) -> float:
        """The upper end of the confidence interval."""
        return self.ci_high

    def __str__(self) -> str:
        level = f"{self.confidence:.0%}"
        if self.is_upper_bound:
            return f"P < {self.ci_high:.3g} ({level}; 0 hits in {self.trials:,} trials)"
        return (
            f"P = {self.probability:.3g} [{self.ci_low:.3g}, {self.ci_high:.3g}] "
            f"({level}; {self.hits:,} hits in {self.trials:,} trials)"
        )


def _batches(total: int, batch_size: int) -> Iterator[int]:
    while total > 0:
        size = min(total, batch_size)
        yield size
        total -= size


def _random_subsets(rng: np.random.Generator, rows: int, n: int, size: int) -> np.ndarray:
    """`rows` independent uniformly random `size`-subsets of range(n), as index arrays."""
    if size == 0:
        return np.empty((rows, 0), np.int64)
    keys = rng.random((rows, n))
    return np.argpartition(keys, size - 1, axis=1)[:, :size]


def simulate_binary_matches(
    n: int,
    a: int,
    w: int = 24,
    theta: int = 12,
    trials: int = 1_000_000,
    seed: int | Sequence[int] | np.random.Generator | None = 0,
    method: Literal["hypergeometric", "vectors"] = "hypergeometric",
    batch_size: int = 1 << 20,
    confidence: float = 0.95,
) -> MatchEstimate:
    """Estimates `P(x·y >= theta)` for random binary vectors by simulation (Fig. 2 dots).

    `x` has `w` of `n` bits on, `y` has `a` of `n` bits on at uniformly random
    positions, and each trial is one draw of `y`.

    Two methods draw the same quantity:
    - `"hypergeometric"` (default): the dot product of two binary vectors is the
      number of on-bits they share, and for a uniformly random `a`-subset against any
      fixed `w`-subset that count is hypergeometric. NumPy's hypergeometric sampler
      draws it in O(1) per trial, so millions of trials per point are cheap.
    - `"vectors"`: builds the vectors themselves (a random `x` per batch, a random
      `y` per trial, via random keys and `argpartition`) and takes real dot products,
      O(n) per trial. Slow, but it assumes nothing; the tests use it to check that
      the fast method, and Eq. 3, describe actual random vectors.

    Args:
        n: Vector length.
        a: On-bits of the random vector `y`.
        w: On-bits of the fixed vector `x`.
        theta: Match threshold, `0 <= theta <= w`.
        trials: Number of random vectors `y`.
        seed: Seed or `np.random.Generator`; the same seed gives the same result.
        method: `"hypergeometric"` or `"vectors"`, see above.
        batch_size: Trials drawn at once (memory bound; the `"vectors"` method further
            caps it at about 4M vector entries).
        confidence: Level of the confidence interval.

    Returns:
        A `MatchEstimate`.

    Example:

    >>> est = simulate_binary_matches(n=100, a=32, trials=100_000, seed=0)
    >>> est.ci_low <= match_probability(100, 32, 24, 12) <= est.ci_high
    True
    """
    n, a, w, theta = _check_match_args(n, a, w, theta)
    if any(np.ndim(v) for v in (n, a, w, theta)):
        raise ValueError("simulate_binary_matches takes scalar n, a, w, theta; loop for sweeps.")
    trials = _integers("trials", trials, minimum=1)
    batch_size = _integers("batch_size", batch_size, minimum=1)
    rng = np.random.default_rng(seed)
    hits = 0
    if method == "hypergeometric":
        for size in _batches(trials, batch_size):
            overlaps = rng.hypergeometric(w, n - w, a, size=size) if a else np.zeros(size, np.int64)
            hits += int(np.count_nonzero(overlaps >= theta))
    elif method == "vectors":
        rows = max(1, min(batch_size, 4_000_000 // n))
        for size in _batches(trials, rows):
            x = np.zeros(n, np.int64)
            x[_random_subsets(rng, 1, n, w)[0]] = 1
            y = np.zeros((size, n), np.int64)
            np.put_along_axis(y, _random_subsets(rng, size, n, a), 1, axis=1)
            hits += int(np.count_nonzero(y @ x >= theta))
    else:
        raise ValueError(f"method must be 'hypergeometric' or 'vectors', got {method!r}.")
    return MatchEstimate(hits, trials, confidence, f"binary/{method}")


def scalar_threshold(k: int) -> float:
    """The match threshold of Fig. 3: θ = E[x_w · x_w] / 2 = 1 / (6k).

    `x_w` has `k` non-zero weights drawn from U[−1/k, 1/k]. A weight `u` from that
    distribution has E[u²] = (1/k)² / 3 (the variance of U[−h, h] is h²/3 and the
    mean is 0), so E[x_w · x_w] = k · 1/(3k²) = 1/(3k), and θ is half of it.

    Args:
        k: Number of non-zero weights.

    Returns:
        θ as a float.

    Example:

    >>> scalar_threshold(32) == 1 / 192
    True
    """
    k = _integers("k", k, minimum=1)
    return 1.0 / (6.0 * k)


def _check_scalar_args(n, a, k, scale):
    n = _integers("n", n, minimum=1)
    a = _integers("a", a)
    k = _integers("k", k, minimum=1)
    scale = _positive_real("scale", scale)
    _at_most("a", a, "n", n, "a vector cannot have more non-zeros than entries")
    _at_most("k", k, "n", n, "a vector cannot have more non-zeros than entries")
    return n, a, k, scale


def _reach(k: int, scale: float) -> float:
    """c = k / (12 S): the match condition in units of one product's largest value.

    A product of a weight U[−1/k, 1/k] and an input S·U[0, 2/k] is (2S/k²)·U·V with
    U ~ U[−1, 1], V ~ U[0, 1]; the dot product over an overlap of b positions reaches
    θ = 1/(6k) exactly when Σ U_j V_j >= θ·k²/(2S) = k/(12S). Each U·V is at most 1, so
    overlaps b < c can never match.
    """
    return k / (12.0 * scale)


def simulate_scalar_matches(
    n: int,
    a: int,
    k: int = 32,
    scale: float = 1.0,
    trials: int = 1_000_000,
    seed: int | Sequence[int] | np.random.Generator | None = 0,
    method: Literal["overlap", "vectors"] = "overlap",
    batch_size: int = 1 << 17,
    confidence: float = 0.95,
) -> MatchEstimate:
    """Estimates the match probability of random scalar vectors by simulation (Fig. 3 dots).

    The weight vector `x_w` has `k` non-zeros drawn from U[−1/k, 1/k], the input `x_i`
    has `a` non-zeros drawn from `scale`·U[0, 2/k]; both at uniformly random positions
    among `n`, fresh for every trial. A trial matches when
    `x_w · x_i >= θ = E[x_w · x_w] / 2 = 1/(6k)` (see `scalar_threshold`).

    Two methods draw the same quantity:
    - `"overlap"` (default): only positions where both vectors are non-zero add to the
      dot product. Their number is hypergeometric, so each trial draws it, then draws
      that many weights and inputs and sums the products. Trials whose overlap is too
      small to ever reach θ (fewer than k/(12·scale) positions, since each product is
      at most 2·scale/k²) are counted as misses without drawing values.
    - `"vectors"`: builds both dense vectors of length `n` per trial and takes the real
      dot product, O(n) per trial; for checking the fast method on small cases.

    Args:
        n: Vector length.
        a: Non-zeros of the input vector.
        k: Non-zeros of the weight vector (32 in the paper).
        scale: The input scale S (Fig. 3 right varies it from 1 to 10).
        trials: Number of (weight, input) pairs.
        seed: Seed or `np.random.Generator`.
        method: `"overlap"` or `"vectors"`, see above.
        batch_size: Trials drawn at once.
        confidence: Level of the confidence interval.

    Returns:
        A `MatchEstimate`.

    Example:

    >>> print(simulate_scalar_matches(n=200, a=100, trials=20_000, seed=0))  # doctest: +ELLIPSIS
    P = 0.0... [0.0..., 0.0...] (95%; ... hits in 20,000 trials)
    """
    n, a, k, scale = _check_scalar_args(n, a, k, scale)
    if any(np.ndim(v) for v in (n, a, k)):
        raise ValueError("simulate_scalar_matches takes scalar n, a, k; loop for sweeps.")
    trials = _integers("trials", trials, minimum=1)
    batch_size = _integers("batch_size", batch_size, minimum=1)
    rng = np.random.default_rng(seed)
    theta = scalar_threshold(k)
    hits = 0
    if method == "overlap":
        reach = _reach(k, scale)
        for size in _batches(trials, batch_size):
            overlaps = rng.hypergeometric(k, n - k, a, size=size) if a else np.zeros(size, np.int64)
            overlaps = overlaps[overlaps >= reach]
            for b, count in zip(*np.unique(overlaps, return_counts=True), strict=True):
                weights = rng.uniform(-1.0 / k, 1.0 / k, size=(count, b))
                inputs = scale * rng.uniform(0.0, 2.0 / k, size=(count, b))
                dots = np.einsum("ij,ij->i", weights, inputs)
                hits += int(np.count_nonzero(dots >= theta))
    elif method == "vectors":
        rows = max(1, min(batch_size, 2_000_000 // n))
        for size in _batches(trials, rows):
            x_w = np.zeros((size, n))
            np.put_along_axis(
                x_w,
                _random_subsets(rng, size, n, k),
                rng.uniform(-1.0 / k, 1.0 / k, (size, k)),
                axis=1,
            )
            x_i = np.zeros((size, n))
            np.put_along_axis(
                x_i,
                _random_subsets(rng, size, n, a),
                scale * rng.uniform(0.0, 2.0 / k, (size, a)),
                axis=1,
            )
            hits += int(np.count_nonzero(np.einsum("ij,ij->i", x_w, x_i) >= theta))
    else:
        raise ValueError(f"method must be 'overlap' or 'vectors', got {method!r}.")
    return MatchEstimate(hits, trials, confidence, f"scalar/{method}")


# ----------------------------------------------------------------------------------------
# Eq. 4-style estimator for the scalar case
# ----------------------------------------------------------------------------------------


def _product_survival(t: np.ndarray) -> np.ndarray:
    """P(Z >= t) for Z = U·V, U ~ U[−1, 1], V ~ U[0, 1].

    For 0 <= t <= 1, Z >= t needs U > 0 (probability 1/2) and then, with A = |U|,
    P(A·V >= t) = ∫_t^1 (1 − t/x) dx = 1 − t + t·ln t. Z is symmetric about 0.
    """
    t = np.asarray(t, np.float64)
    s = np.clip(np.abs(t), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = 0.5 * (1.0 - s + np.where(s > 0.0, s * np.log(s), 0.0))
    return np.where(t >= 0.0, upper, 1.0 - upper)


@dataclasses.dataclass(frozen=True)
class _Proposal:
    """Importance-sampling proposal for one product Z = sign·A·B (A = |U|, B = V).

    A mixture: with probability `1 − rho` the original distribution (sign ±1 with
    probability 1/2, A and B uniform), with probability `rho` a tilted one (sign +1 with
    probability `positive`, A and B ~ Beta(alpha, 1), i.e. pushed towards 1 where the
    rare matches live). Keeping part of the original bounds every likelihood ratio by
    1 / (1 − rho).
    """

    alpha: float = 1.0
    positive: float = 0.5
    rho: float = 0.0


def _overlap_match_samples(
    rng: np.random.Generator, b: int, reach: float, size: int, proposal: _Proposal
) -> np.ndarray:
    """Unbiased samples of p_b = P(Z_1 + ... + Z_b >= reach), Z_j iid like U·V.

    Two variance reductions, both exact in expectation:
    - conditional Monte-Carlo: the last product is integrated out analytically,
      p_b = E[P(Z_b >= reach − Σ_{j<b} Z_j)], so every sample adds a probability, not a
      0/1 hit;
    - importance sampling of the other b − 1 products from `proposal`, each sample
      weighted by its likelihood ratio.
    """
    m = b - 1
    if m == 0:
        return np.full(size, float(_product_survival(reach)))
    alpha, rho = proposal.alpha, proposal.rho
    tilted = rng.random((size, m)) < rho
    u = rng.random((size, m))
    v = rng.random((size, m))
    u = np.where(tilted, u ** (1.0 / alpha), u)
    v = np.where(tilted, v ** (1.0 / alpha), v)
    positive = rng.random((size, m)) < np.where(tilted, proposal.positive, 0.5)
    uv = u * v
    t = reach - np.where(positive, uv, -uv).sum(axis=1)
    if rho == 0.0:
        return _product_survival(t)
    # Proposal density over (sign, A, B) divided by the original density 1/2.
    sign_probability = np.where(positive, proposal.positive, 1.0 - proposal.positive)
    ratio = (1.0 - rho) + 2.0 * rho * sign_probability * alpha * alpha * uv ** (alpha - 1.0)
    return np.exp(-np.log(ratio).sum(axis=1)) * _product_survival(t)


def _proposal_candidates(b: int, reach: float) -> list[_Proposal]:
    """A few proposals from "no tilt" to "every product near reach / b".

    Matching by the most likely route has all b products about equal, reach / b each;
    under Beta(alpha, 1)² the mean of A·B is (alpha / (alpha + 1))², which sets the
    strongest alpha. Milder tilts suit the b's where matching is not rare.
    """
    root = math.sqrt(min(reach / b, 0.995))
    strongest = max(root / (1.0 - root), 1.0)
    middle = math.sqrt(strongest)
    candidates = [
        _Proposal(),
        _Proposal(1.0, 0.75, 0.5),
        _Proposal(1.0, 1.0, 0.5),
        _Proposal(middle, 1.0, 0.5),
        _Proposal(middle, 1.0, 0.9),
        _Proposal(strongest, 1.0, 0.9),
    ]
    return candidates


def _relative_variance(x: np.ndarray) -> float:
    mean = float(x.mean())
    return float(x.var()) / (mean * mean) if mean > 0.0 else math.inf


@functools.lru_cache(maxsize=64)
def _overlap_match_table(
    k: int, scale: float, rtol: float, max_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    reach = _reach(k, scale)
    p = np.zeros(k + 1)
    se = np.zeros(k + 1)
    used = np.zeros(k + 1, np.int64)
    for b in range(1, k + 1):
        if b <= reach:
            continue  # b products of at most 1 each cannot reach `reach`: p_b = 0
        if b == 1:
            p[b] = float(_product_survival(reach))
            continue
        rng = np.random.default_rng([seed, k, b])
        # A short pilot picks the proposal with the smallest relative variance; its
        # samples are then discarded so the choice cannot bias the estimate.
        candidates = _proposal_candidates(b, reach)
        scores = [
            _relative_variance(_overlap_match_samples(rng, b, reach, 2048, c)) for c in candidates
        ]
        proposal = candidates[int(np.argmin(scores))]
        if not math.isfinite(min(scores)):
            proposal = candidates[-1]  # nothing seen: tilt hardest
        total = total_sq = 0.0
        count = 0
        # Samples needed for the target: relative variance / rtol² (from the pilot,
        # then from the running estimate), drawn in batches that bound memory.
        needed = min(scores) / rtol**2
        while count < max_samples:
            size = int(min(max(needed - count, 4096), 1 << 16, max_samples - count))
            x = _overlap_match_samples(rng, b, reach, size, proposal)
            total += float(x.sum())
            total_sq += float(np.square(x).sum())
            count += x.size
            mean = total / count
            var = max(total_sq / count - mean * mean, 0.0) / max(count - 1, 1)
            if mean > 0.0 and math.sqrt(var) <= rtol * mean:
                break
            needed = 1.1 * count * var / (rtol * mean) ** 2 if mean > 0.0 else 2 * count
        p[b] = mean
        # No positive sample at all: report 1/count as a (rough) scale of what was missed.
        se[b] = math.sqrt(var) if mean > 0.0 else 1.0 / count
        used[b] = count
    for array in (p, se, used):
        array.setflags(write=False)
    return p, se, used


def overlap_match_probabilities(
    k: int = 32,
    scale: float = 1.0,
    *,
    rtol: float = 0.02,
    max_samples: int = 1 << 22,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match probability p_b given an overlap of b non-zero positions, b = 0..k (Eq. 4's p_b).

    Given the overlap size b, the dot product of the Fig. 3 vectors is a sum of b
    products weight·input, and p_b = P(sum >= θ) depends only on b, k and the scale,
    not on n or a. With the products written as (2S/k²)·Z, Z = U·V, U ~ U[−1, 1],
    V ~ U[0, 1], p_b = P(Z_1 + … + Z_b >= k/(12S)). Hence:
    - p_b = 0 exactly while b <= k/(12S) (each Z is at most 1), so those b are skipped;
    - p_1 is closed-form: P(Z >= t) = (1 − t + t·ln t)/2 for t in [0, 1];
    - every other p_b is simulated with the last product integrated out analytically
      and, when matching is rare, importance sampling towards large products (see
      `_overlap_match_samples`), each b until its standard error is below
      `rtol · p_b` or `max_samples` is spent. Rare b's therefore get the samples and
      common ones (p_b ~ 0.1) stop after a few thousand.

    Results are cached per argument set: Fig. 3 needs one table per scale.

    Args:
        k: Non-zeros of the weight vector.
        scale: Input scale S.
        rtol: Target relative standard error of each p_b.
        max_samples: Cap on samples per b.
        seed: Seed; b uses the stream `default_rng([seed, k, b])`, so tables for
            different scales share random numbers and curves over S are smooth.

    Returns:
        Read-only arrays `(p, std_error, samples)`, each of length k + 1, indexed by b.

    Example:

    >>> p, se, n_samples = overlap_match_probabilities(k=32, scale=1.0)
    >>> p[:3].tolist()  # overlaps of 2 or fewer can never reach θ at S = 1
    [0.0, 0.0, 0.0]
    """
    k = _integers("k", k, minimum=1)
    scale = _positive_real("scale", scale)
    rtol = _positive_real("rtol", rtol)
    max_samples = _integers("max_samples", max_samples, minimum=2)
    seed = _integers("seed", seed)
    return _overlap_match_table(k, scale, rtol, max_samples, seed)


@dataclasses.dataclass(frozen=True)
class OverlapEstimate:
    """Result of `estimate_scalar_match_probability`; array fields broadcast over (n, a).

    Attributes:
        probability: The estimate Σ_b P(overlap = b) · p_b.
        std_error: Its standard error, from the per-b standard errors (the b's are
            simulated independently; the weights are exact).
        ci_low, ci_high: Normal-approximation confidence interval, clipped at 0.
        confidence: Its level.
        overlap_match: p_b, b = 0..k.
        overlap_std_error: Standard error of each p_b.
        overlap_samples: Samples spent on each p_b (0 where p_b is exact).
    """

    probability: float | np.ndarray
    std_error: float | np.ndarray
    ci_low: float | np.ndarray
    ci_high: float | np.ndarray
    confidence: float
    overlap_match: np.ndarray
    overlap_std_error: np.ndarray
    overlap_samples: np.ndarray


def estimate_scalar_match_probability(
    n,
    a,
    k: int = 32,
    scale: float = 1.0,
    *,
    rtol: float = 0.02,
    max_samples: int = 1 << 22,
    seed: int = 0,
    confidence: float = 0.95,
) -> OverlapEstimate:
    """Estimates the Fig. 3 match probability as Σ_b P(overlap = b) · p_b (an Eq. 4 estimator).

    The paper writes the scalar match probability as a sum over overlap sizes b of
    the number of vectors with that overlap times the chance p_b that such an overlap
    reaches θ (Eq. 4–5), and leaves p_b to simulation. Here the weights are the exact
    hypergeometric probabilities (as in Eq. 3) and p_b comes from
    `overlap_match_probabilities`, so the estimate reaches probabilities like 1e-12
    (far beyond what counting hits can see) at the cost of one table per scale.

    Args:
        n: Vector length (int or array).
        a: Non-zeros of the input vector (int or array, broadcast with `n`).
        k: Non-zeros of the weight vector.
        scale: Input scale S.
        rtol: Passed to `overlap_match_probabilities`.
        max_samples: Passed to `overlap_match_probabilities`.
        seed: Passed to `overlap_match_probabilities`.
        confidence: Level of the confidence interval.

    Returns:
        An `OverlapEstimate` (floats for scalar `n`, `a`; arrays otherwise).

    Example:

    >>> est = estimate_scalar_match_probability(n=2000, a=24)
    >>> 1e-12 < est.probability < 1e-6
    True
    """
    n, a, k, scale = _check_scalar_args(n, a, k, scale)
    if np.ndim(k):
        raise ValueError(f"k must be a single integer, got {k!r}.")
    z = _z_score(_confidence(confidence))
    p, se, used = overlap_match_probabilities(
        k, scale, rtol=rtol, max_samples=max_samples, seed=seed
    )
    weights = overlap_distribution(n, a, k)
    probability = weights @ p
    std_error = np.sqrt(np.square(weights) @ np.square(se))
    return OverlapEstimate(
        probability=_scalar_or_array(probability),
        std_error=_scalar_or_array(std_error),
        ci_low=_scalar_or_array(np.maximum(probability - z * std_error, 0.0)),
        ci_high=_scalar_or_array(probability + z * std_error),
        confidence=confidence,
        overlap_match=p,
        overlap_std_error=se,
        overlap_samples=used,
    )


# ----------------------------------------------------------------------------------------
# Figure sweeps
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sweep:
    """One panel of a figure: curves of P(match) against one swept variable.

    Attributes:
        title: Panel title.
        x_label: Name of the swept variable.
        labels: One legend label per curve.
        x: Swept values where the simulation ran.
        simulated: Per curve, per `x`, a `MatchEstimate`, or None where the point does
            not exist (e.g. a > n).
        theory_x: Swept values of the theory curves (usually a finer grid).
        theory: Array (curves × `theory_x`) of exact (Eq. 3) or estimated (Eq. 4)
            values; NaN where the point does not exist.
        theory_label: What `theory` is, for the legend.
    """

    title: str
    x_label: str
    labels: list[str]
    x: np.ndarray
    simulated: list[list[MatchEstimate | None]]
    theory_x: np.ndarray
    theory: np.ndarray
    theory_label: str


def _a_label(a: int | str) -> str:
    return "a = n/2 (dense)" if a == DENSE else f"a = {a}"


def _a_values_for(a: int | str, n: np.ndarray) -> np.ndarray:
    if a == DENSE:
        return n // 2
    return np.full(n.shape, _integers("a", a))


def _fine_grid(values: np.ndarray, points: int = 200) -> np.ndarray:
    return np.unique(np.round(np.linspace(values.min(), values.max(), points)).astype(np.int64))


def _progress(total: int, enabled: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=description, unit="point")


def figure2_sweep(
    n_values: Sequence[int] = FIGURE2_N_VALUES,
    a_values: Sequence[int | str] = FIGURE_A_VALUES,
    w: int = 24,
    theta: int = 12,
    trials: int = 1_000_000,
    seed: int = 0,
    progress: bool = True,
) -> Sweep:
    """Computes Fig. 2: exact P(match) (Eq. 3) and simulated frequencies against n.

    Args:
        n_values: Vector lengths to simulate; the exact curves use a fine grid between
            the smallest and largest.
        a_values: On-bits of the random vectors; `DENSE` ("dense") means a = n // 2.
            Points with a > n are skipped.
        w: On-bits of the fixed vector.
        theta: Match threshold.
        trials: Simulated vectors per point (see `simulate_binary_matches`).
        seed: Base seed; point (curve i, n index j) uses `default_rng([seed, i, j])`.
        progress: Show a tqdm progress bar over the simulated points.

    Returns:
        A `Sweep`.
    """
    n_values = np.asarray([_integers("n", n, minimum=1) for n in n_values])
    theory_n = _fine_grid(n_values)
    theory = np.full((len(a_values), len(theory_n)), np.nan)
    simulated: list[list[MatchEstimate | None]] = []
    with _progress(len(a_values) * len(n_values), progress, "Fig. 2") as bar:
        for i, a_spec in enumerate(a_values):
            a_fine = _a_values_for(a_spec, theory_n)
            valid = (a_fine <= theory_n) & (w <= theory_n)
            theory[i, valid] = match_probability(theory_n[valid], a_fine[valid], w, theta)
            row: list[MatchEstimate | None] = []
            for j, (n, a) in enumerate(zip(n_values, _a_values_for(a_spec, n_values), strict=True)):
                if a > n or w > n:
                    row.append(None)
                else:
                    row.append(
                        simulate_binary_matches(int(n), int(a), w, theta, trials, seed=[seed, i, j])
                    )
                bar.update()
            simulated.append(row)
    return Sweep(
        title=f"Binary vectors: |x| = {w}, θ = {theta}",
        x_label="n (vector length)",
        labels=[_a_label(a) for a in a_values],
        x=n_values,
        simulated=simulated,
        theory_x=theory_n,
        theory=theory,
        theory_label="Eq. 3 (exact)",
    )


def figure3_sweeps(
    n_values: Sequence[int] = FIGURE3_N_VALUES,
    a_values: Sequence[int | str] = FIGURE_A_VALUES,
    k: int = 32,
    scales: Sequence[float] = FIGURE3_SCALES,
    scale_n: int = 1000,
    scale_a_values: Sequence[int | str] = FIGURE3_SCALE_A_VALUES,
    trials: int = 1_000_000,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Sweep, Sweep]:
    """Computes Fig. 3: simulated and Eq. 4-estimated scalar match probabilities.

    Args:
        n_values: Vector lengths simulated in the left panel (scale 1); its estimator
            curves use a fine grid between the smallest and largest.
        a_values: Input non-zeros of the left panel; `DENSE` means a = n // 2.
        k: Non-zeros of the weight vector.
        scales: Input scales S of the right panel (one estimator table each).
        scale_n: Vector length of the right panel.
        scale_a_values: Input non-zeros of the right panel.
        trials: Simulated vector pairs per point (see `simulate_scalar_matches`).
        seed: Base seed (left point (i, j): `[seed, 0, i, j]`; right: `[seed, 1, i, j]`;
            the estimator: `seed`).
        progress: Show a tqdm progress bar over the simulated points.

    Returns:
        `(left, right)` `Sweep`s: P against n at S = 1, and P against S at n = `scale_n`.
    """
    n_values = np.asarray([_integers("n", n, minimum=1) for n in n_values])
    scales = np.asarray([_positive_real("scale", s) for s in scales])
    scale_n = _integers("scale_n", scale_n, minimum=1)
    theory_n = _fine_grid(n_values)
    total = len(a_values) * len(n_values) + len(scale_a_values) * len(scales)
    with _progress(total, progress, "Fig. 3") as bar:
        left_theory = np.full((len(a_values), len(theory_n)), np.nan)
        left_sim: list[list[MatchEstimate | None]] = []
        for i, a_spec in enumerate(a_values):
            a_fine = _a_values_for(a_spec, theory_n)
            valid = (a_fine <= theory_n) & (k <= theory_n)
            left_theory[i, valid] = estimate_scalar_match_probability(
                theory_n[valid], a_fine[valid], k, 1.0, seed=seed
            ).probability
            row: list[MatchEstimate | None] = []
            for j, (n, a) in enumerate(zip(n_values, _a_values_for(a_spec, n_values), strict=True)):
                if a > n or k > n:
                    row.append(None)
                else:
                    row.append(
                        simulate_scalar_matches(
                            int(n), int(a), k, 1.0, trials, seed=[seed, 0, i, j]
                        )
                    )
                bar.update()
            left_sim.append(row)
        right_theory = np.full((len(scale_a_values), len(scales)), np.nan)
        right_sim: list[list[MatchEstimate | None]] = []
        for i, a_spec in enumerate(scale_a_values):
            a = int(_a_values_for(a_spec, np.asarray(scale_n)))
            row = []
            for j, s in enumerate(scales):
                if a > scale_n or k > scale_n:
                    row.append(None)
                else:
                    right_theory[i, j] = estimate_scalar_match_probability(
                        scale_n, a, k, float(s), seed=seed
                    ).probability
                    row.append(
                        simulate_scalar_matches(
                            scale_n, a, k, float(s), trials, seed=[seed, 1, i, j]
                        )
                    )
                bar.update()
            right_sim.append(row)
    left = Sweep(
        title=f"Scalar vectors, S = 1 (k = {k})",
        x_label="n (vector length)",
        labels=[_a_label(a) for a in a_values],
        x=n_values,
        simulated=left_sim,
        theory_x=theory_n,
        theory=left_theory,
        theory_label="Eq. 4 estimator",
    )
    right = Sweep(
        title=f"Scalar vectors, n = {scale_n} (k = {k})",
        x_label="S (input scale)",
        labels=[_a_label(a) for a in scale_a_values],
        x=scales,
        simulated=right_sim,
        theory_x=scales,
        theory=right_theory,
        theory_label="Eq. 4 estimator",
    )
    return left, right


# ----------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------


def _plot_sweep(ax, sweep: Sweep) -> None:
    from matplotlib.lines import Line2D

    colours = [f"C{i % 10}" for i in range(len(sweep.labels))]
    for colour, label, theory, simulated in zip(
        colours, sweep.labels, sweep.theory, sweep.simulated, strict=True
    ):
        shown = np.isfinite(theory) & (theory > 0)
        ax.plot(sweep.theory_x[shown], theory[shown], "--", color=colour, lw=1.3, label=label)
        hit_x = [
            x
            for x, e in zip(sweep.x, simulated, strict=True)
            if e is not None and not e.is_upper_bound
        ]
        hit_p = [e.probability for e in simulated if e is not None and not e.is_upper_bound]
        bound_x = [
            x for x, e in zip(sweep.x, simulated, strict=True) if e is not None and e.is_upper_bound
        ]
        bound_p = [e.upper_bound for e in simulated if e is not None and e.is_upper_bound]
        ax.plot(hit_x, hit_p, "o", color=colour, ms=4.5, ls="none")
        ax.plot(bound_x, bound_p, "v", color=colour, mfc="none", ms=5, ls="none", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel(sweep.x_label)
    ax.set_ylabel("P(match)")
    ax.set_title(sweep.title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles = [
        *ax.get_legend_handles_labels()[0],
        Line2D([], [], color="0.3", ls="--", label=sweep.theory_label),
        Line2D([], [], color="0.3", marker="o", ls="none", label="simulation"),
        Line2D(
            [], [], color="0.3", marker="v", mfc="none", ls="none", label="0 hits: 95% upper bound"
        ),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _new_figure(width: float, height: float) -> Figure:
    # A bare Figure with an Agg canvas: no pyplot, so no global backend or figure registry
    # is touched, and it renders headless.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure2(sweep: Sweep | None = None, **sweep_kwargs) -> Figure:
    """Draws Fig. 2: P(match) of random binary vectors against n, one curve per a.

    Dashed lines are Eq. 3 (exact), dots simulated frequencies, hollow triangles the
    95% upper bound of points where the simulation saw no match.

    Args:
        sweep: A `figure2_sweep` result; computed with `sweep_kwargs` when None.
        **sweep_kwargs: Passed to `figure2_sweep`.

    Returns:
        A `matplotlib.figure.Figure` (Agg canvas; save it with `save_figure`).

    Example:

    >>> fig = figure2(n_values=[100, 200], a_values=[24], trials=1000, progress=False)
    >>> len(fig.axes)
    1
    """
    sweep = sweep if sweep is not None else figure2_sweep(**sweep_kwargs)
    fig = _new_figure(8.0, 5.0)
    _plot_sweep(fig.add_subplot(), sweep)
    fig.suptitle("Fig. 2: probability that a random vector matches a fixed one", fontsize=11)
    return fig


def figure3(sweeps: tuple[Sweep, Sweep] | None = None, **sweep_kwargs) -> Figure:
    """Draws Fig. 3: scalar match probability against n (left) and the input scale (right).

    Dashed lines are the Eq. 4 estimator, dots simulated frequencies, hollow triangles
    95% upper bounds where the simulation saw no match.

    Args:
        sweeps: A `figure3_sweeps` result; computed with `sweep_kwargs` when None.
        **sweep_kwargs: Passed to `figure3_sweeps`.

    Returns:
        A `matplotlib.figure.Figure` with two axes.
    """
    left, right = sweeps if sweeps is not None else figure3_sweeps(**sweep_kwargs)
    fig = _new_figure(15.0, 5.0)
    _plot_sweep(fig.add_subplot(1, 2, 1), left)
    _plot_sweep(fig.add_subplot(1, 2, 2), right)
    fig.suptitle(
        "Fig. 3: match probability of random scalar vectors (θ = E[x_w·x_w] / 2)", fontsize=11
    )
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Writes a figure to `path` (format from the suffix), creating parent folders.

    Args:
        fig: The figure.
        path: Output file, e.g. `"docs/images/fig2.png"`.
        dpi: Resolution for raster formats.

    Returns:
        The path written, as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
