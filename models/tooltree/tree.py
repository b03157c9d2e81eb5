"""The node union and the whole tree.

`Node` is one discriminated union of every node type, keyed by `type`; `NODE_TYPES` is that registry, read
by the parser, the renderer's dispatch table (`ray_render.evaluate.OPERATIONS`) and the docs.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.tooltree import base
from models.tooltree.base import SceneSource
from models.tooltree.classes import COLORMAP_BANDS, Classify, Colormap
from models.tooltree.expressions import Expression
from models.tooltree.neighbourhood import MAX_HALO, Focal, Terrain, halo
from models.tooltree.nodes import BandMath, ColorCorrect, Identity, Mask, MaskBy, NormalizedDifference, Output, SelectBands
from models.tooltree.sources import Leaf, ProjectSource, SceneLeaf

NODE_TYPES: dict[str, type[base.BaseNode]] = {
    cls.model_fields["type"].default: cls
    for cls in (ProjectSource, SceneLeaf, Identity, SelectBands, ColorCorrect, NormalizedDifference, BandMath,
                Classify, Colormap, Focal, Terrain, Mask, MaskBy, Output)
}

AnyNode = Annotated[Union[tuple(NODE_TYPES.values())], Field(discriminator="type")]  # noqa: UP007

for _cls in NODE_TYPES.values():
    _cls.model_rebuild(_types_namespace={"Node": AnyNode, "Expression": Expression})

# Nodes that pass their input's bands through unchanged (for finding what really makes the output).
_PASS_THROUGH = (Identity, Mask, MaskBy)
PASS_THROUGH_TYPES = tuple(cls.model_fields["type"].default for cls in _PASS_THROUGH)


def producer(node: base.BaseNode) -> base.BaseNode:
    """The node that makes `node`'s bands, looking through identity and mask nodes."""
    while isinstance(node, (Output, *_PASS_THROUGH)):
        node = node.input
    return node


class ToolTree(BaseModel):
    """A whole tree: its root must be an `Output` node."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root: Output

    @model_validator(mode="after")
    def _rgba_is_uint8(self) -> ToolTree:
        if self.is_rgba() and (self.root.dtype != "uint8" or self.root.nodata is not None or self.root.scale != 1
                               or self.root.offset != 0):
            raise ValueError("a colormap makes RGBA uint8 with transparency in its alpha band: its output must be "
                             '{"type": "output", "dtype": "uint8", "nodata": null} (no scale or offset)')
        return self

    @model_validator(mode="after")
    def _halo_within_limit(self) -> ToolTree:
        if (needed := halo(self.root)) > MAX_HALO:
            raise ValueError(f"the tree's neighbourhood operations reach {needed} pixels beyond each tile (their "
                             f"radii add up along a path), more than the {MAX_HALO} allowed")
        return self

    def halo(self) -> int:
        """Pixels beyond each tile the tree reads (the sum of nested focal radii, terrain's 1, dilations)."""
        return halo(self.root)

    def sources(self) -> list[Leaf]:
        """Every leaf, in the order the tree reads them."""
        return [n for n in self.root.walk() if isinstance(n, Leaf)]

    def scenes(self) -> list[SceneSource]:
        """Every scene any leaf reads, once each, in reading order."""
        seen: dict[Any, SceneSource] = {}
        for leaf in self.sources():
            for scene in leaf.scenes:
                seen.setdefault(scene.id if scene.id is not None else scene.name, scene)
        return list(seen.values())

    def find(self, node_type: type) -> list[base.BaseNode]:
        return [n for n in self.root.walk() if isinstance(n, node_type)]

    def is_rgba(self) -> bool:
        """Whether the output is a colour map's red, green, blue and alpha bands."""
        return isinstance(producer(self.root), Colormap) and self.root.output_bands() == COLORMAP_BANDS

    def is_categorical(self) -> bool:
        """Whether the output holds classes (or colours of classes), whose overviews must not blend values."""
        made_by = producer(self.root)
        while isinstance(made_by, Focal) and made_by.stat in ("mode", "min", "max"):  # these keep class values
            made_by = producer(made_by.input)
        if isinstance(made_by, Colormap):
            return made_by.classes is not None or isinstance(producer(made_by.input), Classify)
        return isinstance(made_by, Classify)

    def to_json(self) -> dict[str, Any]:
        return self.root.model_dump(mode="json")
