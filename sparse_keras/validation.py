"""Argument checks shared by the public API: one clear message per kind of mistake."""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike


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


def open_fraction(name: str, value) -> float:
    """Returns `value` as a float, or raises if it is not in (0, 1) (e.g. a confidence level)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}.")
    return float(value)


def positive_number(name: str, value) -> float:
    """Returns `value` as a float, or raises if it is not a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}.")
    return float(value)


def integers(name: str, value, minimum: int = 0) -> int | np.ndarray:
    """Returns `value` as an int (scalar) or int64 array, or raises naming the bad value.

    Integer-valued floats (e.g. `1000.0`, or `np.linspace` output) are accepted because
    they hold an exact count; anything else that is not a whole number is refused.

    Args:
        name: The argument's name, for the message.
        value: An integer, or anything `np.asarray` turns into an array of integers.
        minimum: The smallest value allowed.

    Returns:
        A Python `int` for a scalar `value`, else an int64 array of its shape.

    Raises:
        ValueError: for booleans, non-integers and values below `minimum`.
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


def at_most(name: str, value: ArrayLike, bound_name: str, bound: ArrayLike, why: str) -> None:
    """Raises if `value > bound` anywhere (both broadcast), naming the first offender.

    Args:
        name: The checked argument's name.
        value: Its value (a number or an array).
        bound_name: The name of the argument that bounds it.
        bound: The bound's value (broadcast with `value`).
        why: Why the bound holds, for the message.

    Raises:
        ValueError: where some element of `value` exceeds `bound`.
    """
    value_b, bound_b = np.broadcast_arrays(np.asarray(value), np.asarray(bound))
    bad = value_b > bound_b
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()
        raise ValueError(
            f"{name} must be <= {bound_name} ({why}), got {name}={value_b[index].item()!r} "
            f"with {bound_name}={bound_b[index].item()!r}."
        )
