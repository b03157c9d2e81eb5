"""Neighbourhood operations: a pixel's result depends on the pixels around it, not only on itself.

`focal` computes a statistic over a square or circular neighbourhood; `terrain` computes slope, aspect or
hillshade from a one-band elevation input. Each declares its `reach`: how many pixels beyond the tile it needs
of its input. The renderer reads every tile with a halo of `halo(tree)` pixels (the sum of nested reaches), so
an export is the same pixel for pixel whatever its tile size. What the operations compute is in
`ray_render.focal` and `ray_render.terrain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from models.tooltree.base import BaseNode, require_one_band

if TYPE_CHECKING:  # the union of every node type, resolved when models.tooltree.tree rebuilds these models
    from models.tooltree.tree import AnyNode as Node

# Largest focal radius (and mask_by dilation), in output pixels: a 129 x 129 neighbourhood.
MAX_RADIUS = 64
# Largest halo a whole tree may need (nested radii add up): beyond it a tile reads more halo than tile.
MAX_HALO = 256
FOCAL_STATS = ("mean", "median", "min", "max", "sum", "std", "mode")
FOCAL_SHAPES = ("square", "circle")
TERRAIN_PRODUCTS = ("slope", "aspect", "hillshade")


class Focal(BaseNode):
    """A statistic of each band over the valid pixels within `radius` output pixels (a square of side
    2 radius + 1, or the pixels whose centres lie within `radius` of the centre's). Nodata where the centre
    pixel is nodata. `std` is the population standard deviation; `mode` breaks ties by the smallest value."""

    type: Literal["focal"] = "focal"
    input: Node
    stat: Literal[FOCAL_STATS]  # type: ignore[valid-type]
    radius: int = Field(ge=1, le=MAX_RADIUS)
    shape: Literal[FOCAL_SHAPES] = "square"  # type: ignore[valid-type]

    def reach(self, child: BaseNode) -> int:
        return self.radius

    def output_bands(self) -> list[str]:
        return self.input.output_bands()


class Terrain(BaseNode):
    """Slope (degrees from horizontal), aspect (compass degrees of the downhill direction; nodata where flat)
    or hillshade (0 to 255, lit from `azimuth` degrees clockwise from north at `altitude` degrees above the
    horizon) of a one-band elevation input, by Horn's 3 x 3 method.

    Elevations are in metres times `z_factor` (0.3048 for feet); pixel sizes are taken from the output grid,
    in metres (per row, on the ellipsoid, for a geographic CRS). Nodata where the centre is nodata; a missing
    neighbour counts as level with the centre (as `gdaldem -compute_edges` does), so edges keep their values.
    """

    type: Literal["terrain"] = "terrain"
    input: Node
    product: Literal[TERRAIN_PRODUCTS]  # type: ignore[valid-type]
    azimuth: float = Field(default=315.0, ge=0, le=360)
    altitude: float = Field(default=45.0, ge=0, le=90)
    z_factor: float = Field(default=1.0, gt=0, le=1e6)

    @model_validator(mode="after")
    def _one_band(self) -> Terrain:
        require_one_band("terrain", "elevation input", self.input)
        return self

    def reach(self, child: BaseNode) -> int:
        return 1

    def output_bands(self) -> list[str]:
        return [self.product]


def halo(root: BaseNode) -> int:
    """Pixels beyond a tile that rendering `root` needs: the largest sum of reaches on a path to a leaf."""
    return max(margins(root).values(), default=0)


def margins(root: BaseNode) -> dict[int, int]:
    """For each node (by id), how many pixels beyond the tile it must be computed over: its parent's margin
    plus the parent's reach towards it. Computed without recursion."""
    found: dict[int, int] = {}
    pending = [(root, 0)]
    while pending:
        node, margin = pending.pop()
        found[id(node)] = max(found.get(id(node), 0), margin)
        pending.extend((child, margin + node.reach(child)) for child in node.children())
    return found
