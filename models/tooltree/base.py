"""What every node shares: the base class, band-name checks, and the scene descriptions leaves carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Iterator

# Longest chain of nodes from the root to a leaf, and most nodes in one tree (both checked before validation,
# without recursion, so that a hostile tree cannot exhaust the stack or the CPU).
MAX_DEPTH = 32
MAX_NODES = 256
# Most terms (bands, constants, operations) in one band_math node, over all its outputs.
MAX_TERMS = 512
OUTPUT_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")
# The values each integer output type holds: a nodata value must be one of them.
INTEGER_RANGES = {"uint8": (0, 255), "uint16": (0, 65535), "int16": (-32768, 32767), "uint32": (0, 2**32 - 1),
                  "int32": (-(2**31), 2**31 - 1)}
# Band names users give (outputs of band_math, classify, indices): short identifiers, never code.
BAND_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"


class BaseNode(BaseModel):
    """A node of the tool tree: it makes named bands from the bands its children make."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def output_bands(self) -> list[str]:
        """Names of the bands this node produces, in order."""
        raise NotImplementedError

    def reach(self, child: BaseNode) -> int:
        """How many pixels beyond each output pixel this node reads of `child` (0: only the pixel itself)."""
        return 0

    def children(self) -> list[BaseNode]:
        """The nodes this one reads, in a fixed order."""
        inp = getattr(self, "input", None)
        return [inp] if inp is not None else []

    def walk(self) -> Iterator[BaseNode]:
        """This node and every node below it, depth first (a node reached twice is yielded twice)."""
        pending: list[BaseNode] = [self]
        while pending:
            node = pending.pop()
            yield node
            pending.extend(reversed(node.children()))


def require_bands(node: str, wanted: list[str], available: list[str]) -> None:
    """Refuse a node that uses band names its input does not make, listing what it does make."""
    missing = [b for b in wanted if b not in available]
    if missing:
        raise ValueError(
            f"{node} uses band(s) {', '.join(missing)} that its input does not provide "
            f"(available: {', '.join(available) or 'none'})"
        )


def require_one_band(node: str, role: str, child: BaseNode) -> None:
    """Refuse a node whose `role` child must make exactly one band but makes another number."""
    bands = child.output_bands()
    if len(bands) != 1:
        raise ValueError(f"{node} needs a one-band {role}, but it makes {len(bands)} bands ({', '.join(bands)}); "
                         f"pick one with a select node")


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
    # Where the scene holds valid pixels: a GeoJSON (Multi)Polygon in `crs` (ray_render.data_area). Readers skip
    # what it cannot reach; None: wherever `bounds` reach.
    data_area: dict | None = None

    def band(self, name: str) -> SceneBand | None:
        return next((b for b in self.bands if b.name == name), None)
