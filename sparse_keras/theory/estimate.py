"""The Eq. 4 estimator: scalar match probabilities far below what plain simulation can see.

The paper writes the match probability of the scalar vectors of Fig. 3 as a sum over
overlap sizes b (Eq. 4–5) and leaves the chance p_b that an overlap of b reaches θ to
simulation. Here the weights P(overlap = b) are exact (`overlap_distribution`, as in
Eq. 3) and each p_b is simulated with variance reduction (conditional Monte-Carlo and
importance sampling) to a target relative error, which reaches probabilities like 1e-12.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from numpy.typing import ArrayLike

from sparse_keras import validation
from sparse_keras.theory.exact import _scalar_or_array, overlap_distribution
from sparse_keras.theory.simulate import _check_scalar_args, _reach, _z_score


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
    k = validation.integers("k", k, minimum=1)
    scale = validation.positive_number("scale", scale)
    rtol = validation.positive_number("rtol", rtol)
    max_samples = validation.integers("max_samples", max_samples, minimum=2)
    seed = validation.integers("seed", seed)
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
    n: ArrayLike,
    a: ArrayLike,
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
    z = _z_score(validation.open_fraction("confidence", confidence))
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
