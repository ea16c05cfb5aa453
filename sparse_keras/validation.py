"""Argument checks shared by the public constructors: one clear message per kind of mistake."""

from __future__ import annotations

import math
import numbers


def positive_int(name: str, value) -> int:
    """Returns `value` as an int, or raises if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def number_at_least(name: str, value, minimum: float) -> float:
    """Returns `value` as a float, or raises if it is not a finite real number >= minimum.

    Infinity is refused: no setting of this package means anything at infinity, and
    it turns into NaN in the arithmetic (inf * 0).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}.")
    return float(value)


def fraction(name: str, value) -> float:
    """Returns `value` as a float, or raises if it is not in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}.")
    return float(value)
