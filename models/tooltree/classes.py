"""Classes and colour: `classify` turns values into class numbers, `colormap` turns one band into RGBA."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from models.tooltree.base import BAND_NAME, BaseNode, require_one_band
from models.tooltree.colors import RAMP_NAMES, Color

if TYPE_CHECKING:  # the union of every node type, resolved when models.tooltree.tree rebuilds these models
    from models.tooltree.tree import AnyNode as Node

MAX_RULES = 256
MAX_CLASSES = 256
COLORMAP_BANDS = ["red", "green", "blue", "alpha"]


def _ramp_kind(value: Any) -> str | None:
    return "name" if isinstance(value, str) else "stops" if isinstance(value, list | tuple) else None


# A ramp is its stops ([[value, colour], ...]) or the name of one of `NAMED_RAMPS`.
Ramp = Annotated[
    Annotated[list[tuple[float, Color]], Tag("stops")] | Annotated[Literal[RAMP_NAMES], Tag("name")],  # type: ignore[valid-type]
    Discriminator(_ramp_kind, custom_error_type="ramp",
                  custom_error_message=f"a ramp is [[value, \"#rrggbb\"], ...] or one of {', '.join(RAMP_NAMES)}"),
]


class Rule(BaseModel):
    """Values from `min` (inclusive) to `max` (exclusive) get class `value`; an open end is unbounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    value: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Rule:
        if self.min is not None and self.max is not None and not self.max > self.min:
            raise ValueError(f"rule [{self.min:g}, {self.max:g}) matches nothing: max must exceed min")
        return self


def _number_keys(kind: str, keys) -> None:
    for key in keys:
        try:
            number = float(key)
        except ValueError:
            raise ValueError(f"{kind} key {key!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{kind} key {key!r} is not a finite number")


class Classify(BaseNode):
    """One band of class numbers from one input band: the first of `rules` that matches (min inclusive, max
    exclusive), or an exact `remap` of integer values; unmatched values get `default` (null: nodata)."""

    type: Literal["classify"] = "classify"
    input: Node
    rules: list[Rule] | None = Field(default=None, min_length=1, max_length=MAX_RULES)
    remap: dict[str, float] | None = Field(default=None, min_length=1, max_length=MAX_CLASSES)
    default: float | None = Field(default=None, allow_inf_nan=False)
    name: str = Field(default="class", pattern=BAND_NAME)

    @field_validator("remap")
    @classmethod
    def _integer_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, number in (value or {}).items():
            try:
                int(key)
            except ValueError:
                raise ValueError(f"remap key {key!r} is not an integer") from None
            if not math.isfinite(number):
                raise ValueError(f"remap value of {key!r} is not a finite number")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> Classify:
        if (self.rules is None) == (self.remap is None):
            raise ValueError("classify takes either `rules` or `remap`")
        require_one_band("classify", "input", self.input)
        return self

    def output_bands(self) -> list[str]:
        return [self.name]


class Colormap(BaseNode):
    """One band to `red, green, blue, alpha` uint8 values: a `ramp` of stops (`[[value, "#rrggbb"], ...]`, linear
    between them, clamped beyond the ends) or a named ramp spread over `range`, or exact `classes`
    (`{"1": "#d7191c"}`, others get `default`, transparent when not given). Nodata becomes alpha 0."""

    type: Literal["colormap"] = "colormap"
    input: Node
    ramp: Ramp | None = None
    range: tuple[float, float] | None = None
    classes: dict[str, Color] | None = Field(default=None, min_length=1, max_length=MAX_CLASSES)
    default: Color | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Colormap:
        if (self.ramp is None) == (self.classes is None):
            raise ValueError("colormap takes either `ramp` or `classes`")
        if isinstance(self.ramp, str):
            if self.range is None or not self.range[1] > self.range[0]:
                raise ValueError(f"the named ramp {self.ramp!r} needs a `range` [low, high] with high above low")
        elif self.range is not None:
            raise ValueError("`range` goes with a named ramp; a ramp of stops gives its own values")
        if isinstance(self.ramp, list):
            values = [v for v, _ in self.ramp]
            if len(values) < 2:
                raise ValueError("a ramp needs at least two stops")
            if any(not math.isfinite(v) for v in values) or any(b <= a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError("a ramp's stop values must be finite and strictly increasing")
        if self.classes is not None:
            _number_keys("classes", self.classes)
        require_one_band("colormap", "input", self.input)
        return self

    def output_bands(self) -> list[str]:
        return list(COLORMAP_BANDS)
