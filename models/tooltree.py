"""The tool tree: a typed description of what to compute per output pixel.

A tree is JSON on the export row and a pydantic model in code. Each node names its input; the root is
always `Output`. Nodes refer to bands by name, and parsing checks that every name a node uses is one its
input produces, so a tree that parses can be evaluated. Nothing here evaluates user strings as code.

Node types (the `type` field): project, identity, select, color_correct, normalized_difference, band_math,
mask, output.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import InvalidToolTree

MAX_DEPTH = 32
OUTPUT_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def output_bands(self) -> list[str]:
        """Names of the bands this node produces, in order."""
        raise NotImplementedError

    def children(self) -> list[Node]:
        inp = getattr(self, "input", None)
        return [inp] if inp is not None else []

    def walk(self):
        """This node and every node below it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()


def _require_bands(node: str, wanted: list[str], available: list[str]) -> None:
    missing = [b for b in wanted if b not in available]
    if missing:
        raise ValueError(
            f"{node} uses band(s) {', '.join(missing)} that its input does not provide "
            f"(available: {', '.join(available) or 'none'})"
        )


class SceneBand(BaseModel):
    """Where one named band of a scene lives: a GDAL-readable URI and a 1-based band index."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    uri: str
    index: int = Field(default=1, ge=1)
    # Physical value = stored value * scale + offset (e.g. Landsat C2 reflectance: 0.0000275, -0.2).
    scale: float = 1.0
    offset: float = 0.0


class SceneSource(BaseModel):
    """A scene as the renderer needs it: its bands' locations and how to read validity."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int | None = None
    name: str
    crs: str
    nodata: float | None = None
    dtype: str
    resolution: tuple[float, float]
    bounds: tuple[float, float, float, float]
    bands: list[SceneBand] = Field(min_length=1)

    def band(self, name: str) -> SceneBand | None:
        return next((b for b in self.bands if b.name == name), None)


class ProjectSource(_Node):
    """Ordered scenes mosaicked first-valid-wins; reads the named `bands` in that order."""

    type: Literal["project"] = "project"
    project_id: int | None = None
    scenes: list[SceneSource] = Field(min_length=1)
    bands: list[str] = Field(min_length=1)
    # Read physical values (each band's scale and offset applied, as float32) rather than stored numbers.
    reflectance: bool = False

    @model_validator(mode="after")
    def _bands_exist(self) -> ProjectSource:
        available = sorted({b.name for s in self.scenes for b in s.bands})
        _require_bands("project source", self.bands, available)
        if len(set(self.bands)) != len(self.bands):
            raise ValueError("project source lists a band more than once")
        return self

    def output_bands(self) -> list[str]:
        return list(self.bands)


class Identity(_Node):
    """Passes its input through unchanged."""

    type: Literal["identity"] = "identity"
    input: Node

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class SelectBands(_Node):
    """Band composition: any 1..N input bands, in any order (true or false colour)."""

    type: Literal["select"] = "select"
    input: Node
    bands: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _bands_exist(self) -> SelectBands:
        _require_bands("select", self.bands, self.input.output_bands())
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


class ColorCorrect(_Node):
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
        _require_bands("color_correct", [s.band for s in self.stretch], bands)
        unstretched = [b for b in bands if b not in {s.band for s in self.stretch}]
        if unstretched:
            raise ValueError(f"color_correct has no stretch for band(s) {', '.join(unstretched)}")
        return self

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class NormalizedDifference(_Node):
    """(a - b) / (a + b) as float32; where a + b is 0 the pixel is nodata. NDVI is (nir, red)."""

    type: Literal["normalized_difference"] = "normalized_difference"
    input: Node
    a: str
    b: str
    name: str = Field(default="nd", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")

    @model_validator(mode="after")
    def _bands_exist(self) -> NormalizedDifference:
        _require_bands("normalized_difference", [self.a, self.b], self.input.output_bands())
        return self

    def output_bands(self) -> list[str]:
        return [self.name]


class BandRef(BaseModel):
    """A band of the input, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    band: str


class Constant(BaseModel):
    """A number."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    const: float = Field(allow_inf_nan=False)


class Operation(BaseModel):
    """One arithmetic step on two operands."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    op: Literal["+", "-", "*", "/"]
    args: list[Expression] = Field(min_length=2, max_length=2)


Expression = BandRef | Constant | Operation
Operation.model_rebuild()


def _operands(expr: Expression):
    """Every operand of an expression, depth first, without recursion."""
    pending = [expr]
    while pending:
        item = pending.pop()
        yield item
        if isinstance(item, Operation):
            pending.extend(item.args)


class BandMath(_Node):
    """Arithmetic over the input's bands as float32 (EVI, ratios, any formula as a tree, never as code).

    A pixel is nodata where a band it uses is nodata, where it divides by zero, or where the result is not finite.
    """

    type: Literal["band_math"] = "band_math"
    input: Node
    expr: Expression
    name: str = Field(default="math", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")

    @model_validator(mode="after")
    def _bands_exist(self) -> BandMath:
        operands = list(_operands(self.expr))
        if len(operands) > 4 * MAX_DEPTH:
            raise ValueError(f"band_math expression has {len(operands)} terms, more than {4 * MAX_DEPTH}")
        _require_bands("band_math", self.bands_used(), self.input.output_bands())
        return self

    def bands_used(self) -> list[str]:
        return sorted({o.band for o in _operands(self.expr) if isinstance(o, BandRef)})

    def output_bands(self) -> list[str]:
        return [self.name]


class Mask(_Node):
    """Pixels whose centre lies outside `geometry` (a GeoJSON (Multi)Polygon in `crs`) become nodata."""

    type: Literal["mask"] = "mask"
    input: Node
    geometry: dict[str, Any]
    crs: str

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


class Output(_Node):
    """The root: casts to `dtype` as value * scale + offset, rounding and clipping to the dtype's range."""

    type: Literal["output"] = "output"
    input: Node
    dtype: Literal[OUTPUT_DTYPES] = "uint8"  # type: ignore[valid-type]
    nodata: float | None = 0
    scale: float = 1.0
    offset: float = 0.0

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


Node = Annotated[
    ProjectSource | Identity | SelectBands | ColorCorrect | NormalizedDifference | BandMath | Mask | Output,
    Field(discriminator="type"),
]

for _model in (Identity, SelectBands, ColorCorrect, NormalizedDifference, BandMath, Mask, Output):
    _model.model_rebuild()


class ToolTree(BaseModel):
    """A whole tree: its root must be an `Output` node."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root: Output

    def sources(self) -> list[ProjectSource]:
        return [n for n in self.root.walk() if isinstance(n, ProjectSource)]

    def find(self, node_type: type) -> list[_Node]:
        return [n for n in self.root.walk() if isinstance(n, node_type)]

    def to_json(self) -> dict[str, Any]:
        return self.root.model_dump(mode="json")


def _depth(data: Any) -> int:
    """Nesting depth of `input` links, measured without recursion (so a hostile tree cannot blow the stack)."""
    depth, node = 0, data
    while isinstance(node, dict) and "input" in node:
        depth += 1
        if depth > MAX_DEPTH:
            break
        node = node["input"]
    return depth


def _location(error: dict[str, Any]) -> str:
    return ".".join(["tool", *(str(p) for p in error["loc"] if not str(p).startswith("function-"))])


def _message(error: dict[str, Any]) -> str:
    return error["msg"].removeprefix("Value error, ")


def parse_tool_tree(data: Any) -> ToolTree:
    """Validate JSON-like `data` as a tool tree, or raise `InvalidToolTree` naming the node and the problem."""
    if not isinstance(data, dict):
        raise InvalidToolTree("tool", f"a tool tree must be a JSON object, not {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise InvalidToolTree("tool", f"tree is deeper than {MAX_DEPTH} nodes")
    if data.get("type") != "output":
        raise InvalidToolTree("tool.type", f"the root node must be 'output', not {data.get('type')!r}")
    try:
        return ToolTree(root=Output.model_validate(data))
    except ValidationError as exc:
        errors = exc.errors()
        if len(errors) == 1:
            raise InvalidToolTree(_location(errors[0]), _message(errors[0])) from None
        reasons = "; ".join(f"{_location(e)}: {_message(e)}" for e in errors[:5])
        raise InvalidToolTree("tool", reasons) from None


# Named indices as templates: (a, b) of the normalised difference, by band name.
INDEX_BANDS: dict[str, tuple[str, str]] = {"ndvi": ("nir", "red"), "ndwi": ("green", "nir")}


def index_node(name: str, source: _Node, bands: tuple[str, str] | list[str] | None = None) -> NormalizedDifference:
    """The named index over `source`, with its standard bands unless others are given."""
    a, b = bands or INDEX_BANDS[name]
    return NormalizedDifference(input=source, a=a, b=b, name=name)


def ndvi(source: _Node, nir: str = "nir", red: str = "red") -> NormalizedDifference:
    """NDVI: the normalised difference of the NIR and red bands."""
    return index_node("ndvi", source, (nir, red))


def ndwi(source: _Node, green: str = "green", nir: str = "nir") -> NormalizedDifference:
    """NDWI (McFeeters): the normalised difference of the green and NIR bands."""
    return index_node("ndwi", source, (green, nir))


def _op(op: str, a, b) -> Operation:
    wrap = lambda x: BandRef(band=x) if isinstance(x, str) else Constant(const=x) if isinstance(x, int | float) else x  # noqa: E731
    return Operation(op=op, args=[wrap(a), wrap(b)])


def evi(source: _Node, nir: str = "nir", red: str = "red", blue: str = "blue") -> BandMath:
    """EVI with MODIS's standard coefficients, on reflectance: 2.5 (NIR - Red) / (NIR + 6 Red - 7.5 Blue + 1)."""
    numerator = _op("*", 2.5, _op("-", nir, red))
    denominator = _op("+", _op("-", _op("+", nir, _op("*", 6.0, red)), _op("*", 7.5, blue)), 1.0)
    return BandMath(input=source, expr=_op("/", numerator, denominator), name="evi")
