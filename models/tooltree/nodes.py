"""Per-pixel operations of the tool tree: band selection, colour correction, indices, band math and masks.

Each node names its children (`input`, the named `inputs` of band_math, the `by` of mask_by), and its
validator checks that every band name it uses is one those children make, so a tree that parses can be
evaluated. What each node computes on pixels is in `ray_render.evaluate`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.tooltree.base import BAND_NAME, INTEGER_RANGES, MAX_TERMS, OUTPUT_DTYPES, BaseNode, require_bands, require_one_band
from models.tooltree.expressions import MAX_BITS, BandRef, Expression, band_refs, terms
from models.tooltree.neighbourhood import MAX_RADIUS

if TYPE_CHECKING:  # the union of every node type, resolved when models.tooltree.tree rebuilds these models
    from models.tooltree.tree import AnyNode as Node

# Most named inputs of one band_math node, and most outputs it may make.
MAX_INPUTS = 16
MAX_OUTPUTS = 16


class Identity(BaseNode):
    """Passes its input through unchanged."""

    type: Literal["identity"] = "identity"
    input: Node

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class SelectBands(BaseNode):
    """Band composition: any 1..N input bands, in any order (true or false colour)."""

    type: Literal["select"] = "select"
    input: Node
    bands: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _bands_exist(self) -> SelectBands:
        require_bands("select", self.bands, self.input.output_bands())
        return self

    def output_bands(self) -> list[str]:
        return list(self.bands)


class Stretch(BaseModel):
    """Linear stretch of one band: `min` maps to 0, `max` to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    band: str
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Stretch:
        if not self.max > self.min:
            raise ValueError(f"stretch of band {self.band}: max ({self.max}) must exceed min ({self.min})")
        return self


class ColorCorrect(BaseNode):
    """Per-band linear stretch to [0, 1], then gamma. Output is float32 in [0, 1].

    The stretch is fixed in the tree (computed once per export, never per tile), so every tile and every
    shard of an export are corrected identically.
    """

    type: Literal["color_correct"] = "color_correct"
    input: Node
    stretch: list[Stretch] = Field(min_length=1)
    gamma: float = Field(default=1.0, gt=0.05, le=10.0)

    @model_validator(mode="after")
    def _stretch_covers_input(self) -> ColorCorrect:
        bands = self.input.output_bands()
        require_bands("color_correct", [s.band for s in self.stretch], bands)
        unstretched = [b for b in bands if b not in {s.band for s in self.stretch}]
        if unstretched:
            raise ValueError(f"color_correct has no stretch for band(s) {', '.join(unstretched)}")
        return self

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class NormalizedDifference(BaseNode):
    """(a - b) / (a + b) as float32; where a + b is 0 the pixel is nodata. NDVI is (nir, red)."""

    type: Literal["normalized_difference"] = "normalized_difference"
    input: Node
    a: str
    b: str
    name: str = Field(default="nd", pattern=BAND_NAME)

    @model_validator(mode="after")
    def _bands_exist(self) -> NormalizedDifference:
        require_bands("normalized_difference", [self.a, self.b], self.input.output_bands())
        return self

    def output_bands(self) -> list[str]:
        return [self.name]


class BandMath(BaseNode):
    """Expressions over the bands of one `input` or of several named `inputs`, as float32.

    One expression (`expr`, making the band `name`) or several (`outputs`: band name -> expression, in order),
    so one node can make a false-colour or index stack. With `inputs`, a band reference names its input
    (`{"band": "ndvi", "input": "after"}`); it may leave it out when exactly one input makes that band.
    """

    type: Literal["band_math"] = "band_math"
    input: Node | None = None
    inputs: dict[str, Node] | None = None
    expr: Expression | None = None
    name: str = Field(default="math", pattern=BAND_NAME)
    outputs: dict[str, Expression] | None = None

    @field_validator("inputs", "outputs")
    @classmethod
    def _names(cls, value: dict[str, Any] | None, info) -> dict[str, Any] | None:
        if value is not None:
            kind, most = ("input", MAX_INPUTS) if info.field_name == "inputs" else ("output", MAX_OUTPUTS)
            if not 1 <= len(value) <= most:
                raise ValueError(f"band_math takes 1 to {most} {kind}s, got {len(value)}")
            for name in value:
                if not re.match(BAND_NAME, name):
                    raise ValueError(f"{name!r} is not a valid {kind} name (a letter, then letters, digits or _; "
                                     f"at most 32)")
        return value

    @model_validator(mode="after")
    def _well_formed(self) -> BandMath:
        if (self.input is None) == (self.inputs is None):
            raise ValueError("band_math takes either `input` (one node) or `inputs` (named nodes), not both or neither")
        if (self.expr is None) == (self.outputs is None):
            raise ValueError("band_math takes either `expr` (one band, called `name`) or `outputs` (band name -> "
                             "expression), not both or neither")
        count = sum(1 for e in self.expressions().values() for _ in terms(e))
        if count > MAX_TERMS:
            raise ValueError(f"band_math has {count} terms, more than {MAX_TERMS}")
        for band, expr in self.expressions().items():
            for ref in band_refs(expr):
                self.resolve(ref, band if self.outputs is not None else "")
        return self

    def expressions(self) -> dict[str, Expression]:
        """Output band name -> its expression, in output order."""
        return dict(self.outputs) if self.outputs is not None else {self.name: self.expr}

    def named_inputs(self) -> dict[str, Node]:
        """Input name -> node; a single `input` is called "input"."""
        return dict(self.inputs) if self.inputs is not None else {"input": self.input}

    def resolve(self, ref: BandRef, output: str = "") -> str:
        """The name of the input `ref` reads; ValueError saying why when there is none or it is ambiguous."""
        where = f"band_math output {output!r}" if output else "band_math"
        if self.inputs is None:
            if ref.input is not None:
                raise ValueError(f"{where} reads band {ref.band!r} of input {ref.input!r}, but this node has a single "
                                 f"`input`; declare named `inputs` to read several")
            require_bands(where, [ref.band], self.input.output_bands())
            return "input"
        if ref.input is not None:
            if ref.input not in self.inputs:
                raise ValueError(f"{where} reads input {ref.input!r}, which is not declared (inputs: "
                                 f"{', '.join(self.inputs)})")
            require_bands(f"{where} (input {ref.input!r})", [ref.band], self.inputs[ref.input].output_bands())
            return ref.input
        makers = [name for name, node in self.inputs.items() if ref.band in node.output_bands()]
        if len(makers) != 1:
            reason = "no input makes it" if not makers else f"inputs {', '.join(makers)} all make it"
            raise ValueError(f"{where} reads band {ref.band!r} without naming its input, and {reason}; "
                             f'write {{"band": "{ref.band}", "input": "<name>"}}')
        return makers[0]

    def children(self) -> list[BaseNode]:
        return list(self.named_inputs().values())

    def output_bands(self) -> list[str]:
        return list(self.expressions())


class Mask(BaseNode):
    """The AOI mask: pixels whose centre lies outside `geometry` (a GeoJSON (Multi)Polygon in `crs`) become
    nodata; with `keep: outside`, those inside it do."""

    type: Literal["mask"] = "mask"
    input: Node
    geometry: dict[str, Any]
    crs: str = "EPSG:4326"
    keep: Literal["inside", "outside"] = "inside"

    @field_validator("geometry")
    @classmethod
    def _polygonal(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"mask geometry must be a Polygon or MultiPolygon, not {value.get('type')!r}")
        if not value.get("coordinates"):
            raise ValueError("mask geometry has no coordinates")
        return value

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class Condition(BaseModel):
    """Which values of a mask band match: listed `values`, a closed `range` [lo, hi], or a bit field of an
    integer band (`bits` [first, count] equal to `equals`, or non-zero when `equals` is not given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    values: list[float] | None = Field(default=None, min_length=1, max_length=1024)
    range: tuple[float, float] | None = None
    bits: tuple[int, int] | None = None
    equals: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        given = [k for k in ("values", "range", "bits") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a mask condition is one of {\"values\": [...]}, {\"range\": [lo, hi]} or "
                             "{\"bits\": [first, count], \"equals\": v}")
        if self.equals is not None and self.bits is None:
            raise ValueError("`equals` goes with `bits`")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range [{self.range[0]:g}, {self.range[1]:g}] is empty: its low end is above its high end")
        if self.bits is not None:
            first, count = self.bits
            if not (0 <= first and 1 <= count and first + count <= MAX_BITS):
                raise ValueError(f"bits [{first}, {count}] is outside a {MAX_BITS}-bit integer")
            if self.equals is not None and self.equals >= 2 ** count:
                raise ValueError(f"equals {self.equals} does not fit in {count} bit(s)")
        return self


class MaskBy(BaseNode):
    """Keeps or removes pixels of `input` by the values of a one-band `by` node (a QA band, a class map).

    Where `by` has no value the pixel becomes nodata: whether it matches is not known. `dilate` (pixels) also
    removes every pixel within that distance of a removed one: a buffer around clouds and their shadows.
    """

    type: Literal["mask_by"] = "mask_by"
    input: Node
    by: Node
    remove_where: Condition | None = None
    keep_where: Condition | None = None
    dilate: int = Field(default=0, ge=0, le=MAX_RADIUS)

    @model_validator(mode="after")
    def _one_condition(self) -> MaskBy:
        if (self.remove_where is None) == (self.keep_where is None):
            raise ValueError("mask_by takes either `remove_where` or `keep_where`")
        require_one_band("mask_by", "`by` node", self.by)
        return self

    def children(self) -> list[BaseNode]:
        return [self.input, self.by]

    def reach(self, child: BaseNode) -> int:
        return self.dilate if child is self.by else 0

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class Output(BaseNode):
    """The root: casts to `dtype` as value * scale + offset, rounding and clipping to the dtype's range."""

    type: Literal["output"] = "output"
    input: Node
    dtype: Literal[OUTPUT_DTYPES] = "uint8"  # type: ignore[valid-type]
    nodata: float | None = 0
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _nodata_is_a_value_of_dtype(self) -> Output:
        # A nodata value the type cannot hold would mark no pixel, and fail the render when written.
        if self.nodata is not None and self.dtype in INTEGER_RANGES:
            low, high = INTEGER_RANGES[self.dtype]
            if not (float(self.nodata).is_integer() and low <= self.nodata <= high):
                raise ValueError(f"nodata {self.nodata:g} is not a value of {self.dtype} (an integer from {low} to {high})")
        return self

    def output_bands(self) -> list[str]:
        return self.input.output_bands()
