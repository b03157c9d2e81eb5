"""The leaves of a tool tree: what it reads.

A user names a project (`{"type": "project", "project": "naip-2014", "bands": ["red", "nir"]}`) or one scene
(`{"type": "scene", "scene": 12, "bands": [...]}`); submission authorises it and binds the leaf to the scenes
it reads (`scenes`), which is the form stored on the export row and read by the renderer. A leaf may set its
own `resampling` (QA and class bands want `nearest` while reflectance uses `bilinear`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from models.errors import InvalidToolTree
from models.tooltree.base import BAND_NAME, BaseNode, SceneSource

# The leaf types, and the fields of a leaf that binding fills in: a user's tree may not set those (it could
# read any file otherwise).
LEAF_TYPES = ("project", "scene")
BOUND_FIELDS = ("scenes", "project_id")


def refuse_bound_fields(node: dict, path: str) -> None:
    """Refuse a user's leaf (JSON) that sets what binding fills in."""
    given = [f for f in BOUND_FIELDS if f in node]
    if given:
        raise InvalidToolTree(f"{path}.{given[0]}", "a tool tree names the projects or scenes it reads (and the "
                                                    "bands), never their files")


RESAMPLING_METHODS = (
    "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "min", "max", "med", "q1", "q3",
)


class Leaf(BaseNode):
    """A source of pixels: named bands read from scenes, warped onto the output grid."""

    bands: list[str] = Field(min_length=1)
    # Filled in at submission from the project or scene the leaf names; users never give it.
    scenes: list[SceneSource] = Field(default_factory=list)
    # Read physical values (each band's scale and offset applied, as float32) rather than stored numbers.
    reflectance: bool = False
    # None: the export's resampling.
    resampling: Literal[RESAMPLING_METHODS] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _bands_exist(self) -> Leaf:
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"{self.type} source lists a band more than once")
        if not self.scenes:
            raise ValueError(f"{self.type} source is bound to no scenes")
        available = sorted({b.name for s in self.scenes for b in s.bands})
        missing = [b for b in self.bands if b not in available]
        if missing:
            raise ValueError(f"the scenes of this {self.type} source have no band(s) {', '.join(missing)} "
                             f"(available: {', '.join(available)})")
        return self

    def output_bands(self) -> list[str]:
        return list(self.bands)

    def children(self) -> list[BaseNode]:
        return []


class ProjectSource(Leaf):
    """A project's scenes mosaicked first-valid-wins (in the project's order), reading `bands`.

    In a saved tool a leaf may leave a `slot` open instead of naming its project; each export binds the slot
    to a project (`--bind before=naip-2014`), and the bound leaf keeps the slot's name.
    """

    type: Literal["project"] = "project"
    # The project as the user named it (a name or an id); None in trees whose project is the export's.
    project: str | int | None = None
    project_id: int | None = None
    slot: str | None = Field(default=None, pattern=BAND_NAME)


class SceneLeaf(Leaf):
    """One scene, by id."""

    type: Literal["scene"] = "scene"
    scene: int = Field(ge=1, le=2**63 - 1)
