"""Band math on arrays: the functions behind `models.tooltree.expressions.OPERATORS`, and mask conditions.

A value is a pair (values, invalid) of float64 arrays (constants are 0-d and broadcast). The nodata rules,
written once here and nowhere else:

1. A result has no value where an argument it uses has none. `where(cond, a, b)` uses `cond` and only the
   branch it picks; `is_nodata(x)` is never nodata itself.
2. A result that is not a finite real number has no value: division by zero, `log`/`log10` at or below 0,
   `sqrt` below 0, `pow` without a real result, `exp` overflowing.
3. Comparisons and logic give 1 (true) or 0 (false), and no value where an argument has none: nodata equals
   nothing and differs from nothing (test it with `is_nodata`). Any non-zero value is true.
4. `bits` of a negative or fractional value has no value.
5. `{"nodata": true}` has no value anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

import numpy as np

from models.tooltree import BandRef, Condition, Constant, NodataValue, Operation

Value = tuple[np.ndarray, np.ndarray]  # (values, invalid)
BandLookup = Callable[[BandRef], Value]
_FALSE = np.zeros((), dtype=bool)


def _elementwise(fn: Callable) -> Callable[[list[Value]], Value]:
    """An operator that uses every argument: invalid where any is (rule 1) or where the result is not finite (2)."""
    def apply(args: list[Value]) -> Value:
        values = fn(*(v for v, _ in args))
        invalid = reduce(np.logical_or, (bad for _, bad in args))
        return values, invalid | ~np.isfinite(values)
    return apply


def _folded(fn: Callable) -> Callable[[list[Value]], Value]:
    """A two-argument numpy function folded over any number of arguments, left to right."""
    return _elementwise(lambda *values: reduce(fn, values))


def _truth(fn: Callable) -> Callable:
    return lambda *values: fn(*values).astype(np.float64)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) >= 0.5, whole + np.sign(x), whole)


def integer_part(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x as uint64, whether x was a non-negative whole number that fits in 32 bits) for bit-field reads."""
    whole = (x >= 0) & (x == np.floor(x)) & (x < 2.0 ** 32)
    return np.where(whole, x, 0).astype(np.uint64), whole


def bit_field(x: np.ndarray, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(the `count` bits of x from bit `first`, whether x could be read as bits) (rule 4)."""
    integers, whole = integer_part(x)
    return (integers >> np.uint64(first)) & np.uint64((1 << count) - 1), whole


def _bits(args: list[Value]) -> Value:
    (x, bad), (first, _), (count, _) = args
    field, whole = bit_field(x, int(first), int(count))
    return field.astype(np.float64), bad | ~whole


def _where(args: list[Value]) -> Value:
    (cond, bad_cond), (a, bad_a), (b, bad_b) = args
    pick = cond != 0
    return np.where(pick, a, b), bad_cond | np.where(pick, bad_a, bad_b)


def _is_nodata(args: list[Value]) -> Value:
    (_, bad), = args
    return np.asarray(bad, dtype=np.float64), _FALSE


FUNCTIONS: dict[str, Callable[[list[Value]], Value]] = {
    "+": _folded(np.add),
    "-": _elementwise(np.subtract),
    "*": _folded(np.multiply),
    "/": _elementwise(np.divide),
    "pow": _elementwise(np.power),
    "min": _folded(np.minimum),
    "max": _folded(np.maximum),
    "atan2": _elementwise(np.arctan2),
    "abs": _elementwise(np.abs),
    "sqrt": _elementwise(np.sqrt),
    "log": _elementwise(lambda x: np.log(np.where(x > 0, x, np.nan))),
    "log10": _elementwise(lambda x: np.log10(np.where(x > 0, x, np.nan))),
    "exp": _elementwise(np.exp),
    "floor": _elementwise(np.floor),
    "ceil": _elementwise(np.ceil),
    "round": _elementwise(_round_half_away),
    "neg": _elementwise(np.negative),
    "sin": _elementwise(np.sin),
    "cos": _elementwise(np.cos),
    "tan": _elementwise(np.tan),
    "lt": _elementwise(_truth(np.less)),
    "le": _elementwise(_truth(np.less_equal)),
    "gt": _elementwise(_truth(np.greater)),
    "ge": _elementwise(_truth(np.greater_equal)),
    "eq": _elementwise(_truth(np.equal)),
    "ne": _elementwise(_truth(np.not_equal)),
    "and": _elementwise(_truth(lambda *v: reduce(np.logical_and, (x != 0 for x in v)))),
    "or": _elementwise(_truth(lambda *v: reduce(np.logical_or, (x != 0 for x in v)))),
    "not": _elementwise(_truth(lambda x: x == 0)),
    "where": _where,
    "clamp": _elementwise(lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi)),
    "bits": _bits,
    "is_nodata": _is_nodata,
}


def evaluate_expression(expr, band: BandLookup) -> Value:
    """(values, invalid) of an expression; `band` gives the (values, invalid) of a band reference."""
    if isinstance(expr, BandRef):
        return band(expr)
    if isinstance(expr, Constant):
        return np.float64(expr.const), _FALSE
    if isinstance(expr, NodataValue):
        return np.float64(0.0), np.ones((), dtype=bool)
    assert isinstance(expr, Operation)
    args = [evaluate_expression(arg, band) for arg in expr.args]
    with np.errstate(all="ignore"):
        return FUNCTIONS[expr.op](args)


def matches(condition: Condition, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where x matches the condition, where that can be told): a bit field of a fractional or negative value
    cannot be (rule 4)."""
    if condition.values is not None:
        return np.isin(x, np.asarray(condition.values, dtype=np.float64)), np.ones(x.shape, dtype=bool)
    if condition.range is not None:
        lo, hi = condition.range
        return (x >= lo) & (x <= hi), np.ones(x.shape, dtype=bool)
    first, count = condition.bits
    field, whole = bit_field(x, first, count)
    hit = field != 0 if condition.equals is None else field == np.uint64(condition.equals)
    return hit, whole
