"""What a render made, as one typed value: `ray_render` returns it, the export row stores it, delivery reads it.

A render makes one COG, or shards of one grid packaged as a ZIP (their COGs, STAC items, a VRT and a STAC
collection). Either way there is one deliverable file with its size and SHA-256; `uri` says where it is
(a path, or s3:// in the artifact store), `stac_uri` where its STAC item or collection is, and `manifest_uri`
where the manifest of what a delivery carries is (every file with its size and SHA-256).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The builtin, named apart: `Rendered.bytes` (the file's size) shadows `bytes` inside the class.
PngBytes = bytes


class RenderedShard(BaseModel):
    """One shard of a packaged render: its window of the output grid, its COG's size and checksum."""

    model_config = ConfigDict(frozen=True)

    name: str
    col_off: int
    row_off: int
    width: int
    height: int
    bytes: int
    sha256: str
    tiles: int


class BandQuality(BaseModel):
    """One band of a render at a glance: its valid values' range and mean."""

    model_config = ConfigDict(frozen=True)

    name: str
    minimum: float | None
    maximum: float | None
    mean: float | None


class Quality(BaseModel):
    """What a render holds, for a person deciding whether it is what they asked for. Counted on the overview
    closest to 1,024 px (exact for outputs no larger), so pixel counts are estimates for large outputs."""

    model_config = ConfigDict(frozen=True)

    pixels: int  # the whole grid
    aoi_pixels: int  # inside the area of interest (the whole grid without one)
    valid_pixels: int  # with a value (in the band that has the fewest)
    valid_share_of_aoi: float
    nodata_share: float  # of the whole grid
    bands: list[BandQuality]


class Rendered(BaseModel):
    """The deliverable a render made and how it was made."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["cog", "package"]
    uri: str
    bytes: int = Field(ge=0)
    sha256: str
    width: int
    height: int
    bands: list[str]
    dtype: str
    tiles: int
    seconds: float
    shards: list[RenderedShard] = Field(default_factory=list)
    stac_uri: str | None = None
    manifest_uri: str | None = None
    quicklook_uri: str | None = None
    quality: Quality | None = None
    # The STAC item (a COG) or collection (a package) as JSON, until it is stored beside the file (`stac_uri`);
    # not kept on the export row.
    stac: dict[str, Any] | None = Field(default=None, exclude=True)
    # The quicklook PNG, likewise until it is stored beside the file (`quicklook_uri`).
    quicklook: PngBytes | None = Field(default=None, exclude=True)
    # Tiles rendered per Ray node, and the bytes of the answers the render's driver took in (a cluster's figures).
    tiles_by_node: dict[str, int] = Field(default_factory=dict)
    driver_bytes: int = 0
    # The earlier export whose identical render this is a copy of (nothing was rendered), or None.
    reused_from: int | None = None

    def stored(self, uri: str, stac_uri: str, manifest_uri: str | None = None,
               quicklook_uri: str | None = None) -> Rendered:
        """The same render once published: the file at `uri`, its STAC, manifest and quicklook beside it."""
        return self.model_copy(update={"uri": uri, "stac_uri": stac_uri, "manifest_uri": manifest_uri,
                                       "quicklook_uri": quicklook_uri, "stac": None, "quicklook": None})

    @property
    def sidecar_uris(self) -> list[str]:
        """The stored files every delivery carries beside the deliverable (STAC, quicklook, manifest)."""
        return [uri for uri in (self.stac_uri, self.quicklook_uri, self.manifest_uri) if uri]


def rendered_of(export) -> Rendered | None:
    """The export's rendered product, or None before its render finished."""
    return Rendered.model_validate(export.rendered) if export.rendered else None
