"""Band math expressions: typed JSON trees of operations over bands and constants, never strings of code.

An expression is one of
    {"band": "nir"}                      a band of the node's input ({"band": "nir", "input": "after"} names which)
    {"const": 2.5}                       a number
    {"nodata": true}                     a pixel with no value
    {"op": "<operator>", "args": [...]}  an operator of `OPERATORS` applied to its arguments

The operators are listed once, in `OPERATORS`, with their arity; the renderer's implementations
(`ray_render.algebra.FUNCTIONS`) are keyed by the same names. How nodata flows through each is written down
in `ray_render.algebra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from models.tooltree.base import BAND_NAME


@dataclass(frozen=True)
class Operator:
    """An operator's arity (`max_args` None: any number from `min_args`) and what it computes."""

    min_args: int
    max_args: int | None
    doc: str


def _fixed(count: int, doc: str) -> Operator:
    return Operator(count, count, doc)


OPERATORS: dict[str, Operator] = {
    # arithmetic
    "+": Operator(2, None, "sum of the arguments"),
    "-": _fixed(2, "a - b"),
    "*": Operator(2, None, "product of the arguments"),
    "/": _fixed(2, "a / b; nodata where b is 0"),
    "pow": _fixed(2, "a to the power b; nodata where that is not a real number"),
    "min": Operator(2, None, "smallest argument"),
    "max": Operator(2, None, "largest argument"),
    "atan2": _fixed(2, "angle of the point (b, a) in radians, as atan2(a, b)"),
    # one argument
    "abs": _fixed(1, "absolute value"),
    "sqrt": _fixed(1, "square root; nodata below 0"),
    "log": _fixed(1, "natural logarithm; nodata at or below 0"),
    "log10": _fixed(1, "base-10 logarithm; nodata at or below 0"),
    "exp": _fixed(1, "e to the power x; nodata where it overflows"),
    "floor": _fixed(1, "largest integer not above x"),
    "ceil": _fixed(1, "smallest integer not below x"),
    "round": _fixed(1, "nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3)"),
    "neg": _fixed(1, "-x"),
    "sin": _fixed(1, "sine of x radians"),
    "cos": _fixed(1, "cosine of x radians"),
    "tan": _fixed(1, "tangent of x radians"),
    # comparisons: 1 where true, 0 where false
    "lt": _fixed(2, "1 where a < b, else 0"),
    "le": _fixed(2, "1 where a <= b, else 0"),
    "gt": _fixed(2, "1 where a > b, else 0"),
    "ge": _fixed(2, "1 where a >= b, else 0"),
    "eq": _fixed(2, "1 where a == b, else 0"),
    "ne": _fixed(2, "1 where a != b, else 0"),
    # logic: any non-zero value is true
    "and": Operator(2, None, "1 where every argument is non-zero, else 0"),
    "or": Operator(2, None, "1 where any argument is non-zero, else 0"),
    "not": _fixed(1, "1 where x is 0, else 0"),
    # selection and bit fields
    "where": _fixed(3, "b where cond is non-zero, else c: where(cond, b, c)"),
    "clamp": _fixed(3, "x limited to [lo, hi]: clamp(x, lo, hi)"),
    "bits": _fixed(3, "the `count` bits of x from bit `first` (0 = least significant): bits(x, first, count); "
                      "first and count are constants, x a non-negative integer (nodata otherwise)"),
    "is_nodata": _fixed(1, "1 where x has no value, else 0 (never nodata itself)"),
}
OPERATOR_NAMES = tuple(OPERATORS)
# Bit fields are read from integers of at most this many bits (QA bands are 8 or 16).
MAX_BITS = 32


class _Term(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandRef(_Term):
    """A band by name; with `input`, of that named input of the band_math node."""

    band: str
    input: str | None = Field(default=None, pattern=BAND_NAME)


class Constant(_Term):
    """A number."""

    const: float = Field(allow_inf_nan=False)


class NodataValue(_Term):
    """A pixel with no value: `where(cond, x, {"nodata": true})` blanks pixels."""

    nodata: Literal[True]


class Operation(_Term):
    """An operator applied to its arguments."""

    op: Literal[OPERATOR_NAMES]  # type: ignore[valid-type]
    args: list[Expression] = Field(min_length=1)

    @model_validator(mode="after")
    def _arity(self) -> Operation:
        spec = OPERATORS[self.op]
        count = len(self.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            wanted = (f"{spec.min_args}" if spec.max_args == spec.min_args else
                      f"at least {spec.min_args}" if spec.max_args is None else f"{spec.min_args} to {spec.max_args}")
            raise ValueError(f"operator {self.op!r} takes {wanted} argument(s), got {count}")
        if self.op == "bits":
            _check_bit_field(self.args[1], self.args[2])
        if self.op == "clamp":
            lo, hi = self.args[1], self.args[2]
            if isinstance(lo, Constant) and isinstance(hi, Constant) and lo.const > hi.const:
                raise ValueError(f"clamp's lower bound ({lo.const:g}) is above its upper bound ({hi.const:g})")
        return self


def _check_bit_field(first: Expression, count: Expression) -> None:
    if not (isinstance(first, Constant) and isinstance(count, Constant)):
        raise ValueError("bits takes constant `first` and `count`: bits(x, {\"const\": first}, {\"const\": count})")
    if first.const != int(first.const) or count.const != int(count.const):
        raise ValueError("bits' `first` and `count` must be whole numbers")
    if not (0 <= first.const and 1 <= count.const and first.const + count.const <= MAX_BITS):
        raise ValueError(f"bits({first.const:g}, {count.const:g}) is outside a {MAX_BITS}-bit integer "
                         f"(0 <= first, 1 <= count, first + count <= {MAX_BITS})")


def _kind(value: Any) -> str | None:
    """Which kind of term a JSON object (or a parsed term) is, by its key."""
    if isinstance(value, dict):
        for key in ("op", "band", "const", "nodata"):
            if key in value:
                return key
        return None
    return {Operation: "op", BandRef: "band", Constant: "const", NodataValue: "nodata"}.get(type(value))


Expression = Annotated[
    Annotated[Operation, Tag("op")] | Annotated[BandRef, Tag("band")] | Annotated[Constant, Tag("const")]
    | Annotated[NodataValue, Tag("nodata")],
    Discriminator(_kind, custom_error_type="expression",
                  custom_error_message='an expression is {"band": ...}, {"const": ...}, {"nodata": true} '
                                       'or {"op": ..., "args": [...]}'),
]
Operation.model_rebuild()


def terms(expr: Expression):
    """Every term of an expression, depth first, without recursion."""
    pending = [expr]
    while pending:
        item = pending.pop()
        yield item
        if isinstance(item, Operation):
            pending.extend(reversed(item.args))


def band_refs(expr: Expression) -> list[BandRef]:
    """The band references of an expression, in order of appearance."""
    return [t for t in terms(expr) if isinstance(t, BandRef)]


def uses_operator(expr: Expression, name: str) -> bool:
    """Whether `name` is applied anywhere in the expression."""
    return any(isinstance(t, Operation) and t.op == name for t in terms(expr))


def op(name: str, *args) -> Operation:
    """Build an operation from Python values: strings are band names, numbers constants (for templates)."""
    def term(value):
        if isinstance(value, str):
            return BandRef(band=value)
        if isinstance(value, int | float):
            return Constant(const=value)
        return value
    return Operation(op=name, args=[term(a) for a in args])
