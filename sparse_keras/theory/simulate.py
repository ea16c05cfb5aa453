"""Monte-Carlo: match frequencies of random binary (Fig. 2) and scalar (Fig. 3) vectors.

Each simulation draws random vectors, counts the trials whose dot product reaches the
threshold and returns a `MatchEstimate`, the frequency with its confidence interval.
The scalar vectors of Fig. 3 and their threshold (`scalar_threshold`) are defined here;
`sparse_keras.theory.estimate` reaches the probabilities too small to simulate.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from sparse_keras import validation
from sparse_keras.theory.exact import _check_match_args


def _z_score(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


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
        z = _z_score(validation.open_fraction("confidence", self.confidence))
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

    >>> from sparse_keras.theory import match_probability
    >>> est = simulate_binary_matches(n=100, a=32, trials=100_000, seed=0)
    >>> est.ci_low <= match_probability(100, 32, 24, 12) <= est.ci_high
    True
    """
    n, a, w, theta = _check_match_args(n, a, w, theta)
    if any(np.ndim(v) for v in (n, a, w, theta)):
        raise ValueError("simulate_binary_matches takes scalar n, a, w, theta; loop for sweeps.")
    trials = validation.integers("trials", trials, minimum=1)
    batch_size = validation.integers("batch_size", batch_size, minimum=1)
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
    k = validation.integers("k", k, minimum=1)
    return 1.0 / (6.0 * k)


def _check_scalar_args(n, a, k, scale):
    n = validation.integers("n", n, minimum=1)
    a = validation.integers("a", a)
    k = validation.integers("k", k, minimum=1)
    scale = validation.positive_number("scale", scale)
    validation.at_most("a", a, "n", n, "a vector cannot have more non-zeros than entries")
    validation.at_most("k", k, "n", n, "a vector cannot have more non-zeros than entries")
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
    trials = validation.integers("trials", trials, minimum=1)
    batch_size = validation.integers("batch_size", batch_size, minimum=1)
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
