"""The facade's scalar arguments, read in one place.

A value of the wrong kind (a string, a list, None where a number belongs) raises ``TypeError``;
a number that is not whole, not finite or out of range raises ``ValueError``. Both name the
function and the argument. Python's own conversions would raise ``OverflowError`` for inf or
10**400, and NumPy scalars would keep their wrapping integer arithmetic (``np.uint8(3) - 5``);
every value leaves here as a plain ``int``, ``float`` or ``bool``.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple

# The native layer takes C ints; every integer is checked against this range first.
INT_MAX = 2**31 - 1


def shown(value) -> str:
    """repr() cut to a readable length (10**400 has 401 digits)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _number(fn: str, name: str, value) -> float:
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: '{name}' must be a number, got {type(value).__name__} {shown(value)}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        raise ValueError(f"{fn}: '{name}' is too large, got {shown(value)}") from None


def _in_range(fn: str, name: str, value, original, lo, hi):
    shown_value = shown(original)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            want = f"from {lo} to {hi}"
        else:
            want = f">= {lo}" if lo is not None else f"<= {hi}"
        raise ValueError(f"{fn}: '{name}' must be {want}, got {shown_value}")


def integer(fn: str, name: str, value, lo: Optional[int] = None, hi: Optional[int] = INT_MAX) -> int:
    """A whole number (an int, a NumPy integer, or a float such as 224.0) in [lo, hi]."""
    if type(value) is int and (lo is None or value >= lo) and (hi is None or value <= hi):
        return value  # the per-frame case, kept cheap
    if isinstance(value, numbers.Integral):
        result = int(value)
    else:
        x = _number(fn, name, value)
        if not math.isfinite(x) or not x.is_integer():
            raise ValueError(f"{fn}: '{name}' must be a whole number, got {shown(value)}")
        result = int(x)
    _in_range(fn, name, result, value, lo, hi)
    return result


def real(fn: str, name: str, value, lo: Optional[float] = None, hi: Optional[float] = None) -> float:
    """A finite number in [lo, hi]."""
    x = _number(fn, name, value)
    if not math.isfinite(x):
        raise ValueError(f"{fn}: '{name}' must be finite, got {shown(value)}")
    _in_range(fn, name, x, value, lo, hi)
    return x


def flag(fn: str, name: str, value) -> bool:
    """True/False (or a NumPy bool, or 0/1)."""
    if isinstance(value, (bool, numbers.Integral)) or type(value).__name__ == "bool_":
        if value in (0, 1):
            return bool(value)
    raise TypeError(f"{fn}: '{name}' must be True or False, got {shown(value)}")


def choice(fn: str, name: str, value, options: Sequence[str]) -> str:
    if type(value) is not str or value not in options:
        raise ValueError(f"{fn}: '{name}' must be one of {tuple(options)}, got {shown(value)}")
    return value


def numbers_of(fn: str, name: str, value, count: int, what: str) -> Tuple[float, ...]:
    """A sequence of exactly ``count`` finite numbers (a box, a size), returned as given."""
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{fn}: '{name}' must be {what}, got {shown(value)}") from None
    if len(items) != count:
        raise TypeError(f"{fn}: '{name}' must be {what}, got {shown(value)}")
    for item in items:
        try:
            real(fn, name, item)
        except TypeError:
            raise TypeError(f"{fn}: '{name}' must be {what}, got {shown(value)}") from None
        except ValueError:
            raise ValueError(f"{fn}: '{name}' must be {what} with finite values, got {shown(value)}") from None
    return tuple(items)


def size(fn: str, name: str, value, limit: int = 65536) -> Tuple[int, int]:
    """(width, height), whole numbers from 1 to ``limit``."""
    width, height = numbers_of(fn, name, value, 2, "(width, height)")
    return (integer(fn, f"{name}[0] (width)", width, 1, limit),
            integer(fn, f"{name}[1] (height)", height, 1, limit))


def box(fn: str, name: str, value) -> Tuple[int, int, int, int]:
    """(x1, y1, x2, y2) rounded to whole pixels, with x2 > x1 and y2 > y1."""
    coords = numbers_of(fn, name, value, 4, "four numbers (x1, y1, x2, y2)")
    limit = float(INT_MAX // 2)  # room for a margin on both sides without leaving C int range
    if any(abs(float(v)) > limit for v in coords):
        raise ValueError(f"{fn}: '{name}' has a coordinate beyond +-{int(limit)}, got {shown(value)}")
    x1, y1, x2, y2 = (int(round(float(v))) for v in coords)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"{fn}: '{name}' must have x2 > x1 and y2 > y1, got {shown(value)}")
    return x1, y1, x2, y2
