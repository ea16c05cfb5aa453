"""Duty-cycle entropy: how evenly boosting spreads the winning among units (SPEC §2)."""

from __future__ import annotations

import numpy as np


def binary_entropy(p) -> np.ndarray:
    """Binary entropy H2(p) in bits, elementwise, with H2(0) = H2(1) = 0.

    Args:
        p: Array-like of probabilities in [0, 1].

    Returns:
        float64 array of the same shape.
    """
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))
    return np.nan_to_num(h, nan=0.0)


def max_entropy(n: int, k: int) -> float:
    """The largest duty-cycle entropy of n units with k winners: `n * H2(k / n)`.

    >>> round(max_entropy(100, 10), 8)
    46.89955936
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"max_entropy needs n > 0 and 0 <= k <= n, got n={n}, k={k}.")
    return float(n * binary_entropy(k / n))


def duty_cycle_entropy(layer) -> float:
    """Entropy `sum_i H2(d_i)` of a built `KWinners` layer's duty cycles, in bits.

    For a convolutional layer each channel's duty cycle stands for all
    `height * width` of its positions, so its entropy counts that many times; the
    maximum is then `max_entropy(layer.units, layer.k)` for both kinds.
    """
    duty = np.asarray(layer.duty_cycles.numpy())
    return float(binary_entropy(duty).sum() * layer.positions_per_unit)


def entropy_fraction(layer) -> float:
    """Duty-cycle entropy of a `KWinners` layer as a fraction of its maximum."""
    return duty_cycle_entropy(layer) / max_entropy(layer.units, min(layer.k, layer.units))
