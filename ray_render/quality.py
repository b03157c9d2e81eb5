"""A render's quality summary: how much of the area of interest holds data, and each band's range and mean,
from the band statistics read back from the output (`ray_render.stats.band_statistics`)."""

from __future__ import annotations

import shapely
from shapely.geometry import box, shape

from models.rendered import BandQuality, Quality
from models.tooltree import Mask, ToolTree
from ray_render.geometry import reproject_geometry
from ray_render.grid import OutputGrid


def aoi_area(tree: ToolTree, grid: OutputGrid):
    """The area asked for, in the grid's CRS: the tree's AOI masks that keep their inside, within the grid (the
    whole grid when it has none)."""
    area = box(*grid.bounds)
    for node in tree.root.walk():
        if isinstance(node, Mask) and node.keep == "inside":
            area = area.intersection(reproject_geometry(shape(node.geometry), node.crs, grid.crs))
    return area


def quality_of(tree: ToolTree, grid: OutputGrid, bands: list[str], statistics: list[dict[str, float]]) -> Quality:
    """The summary of a render of `tree` on `grid` whose bands have these statistics (one dict per band)."""
    pixels = grid.width * grid.height
    pixel_area = abs(grid.transform.a * grid.transform.e)
    aoi_pixels = min(pixels, round(shapely.area(aoi_area(tree, grid)) / pixel_area))
    valid_share = min(band["valid_percent"] for band in statistics) / 100.0
    valid_pixels = round(valid_share * pixels)
    return Quality(
        pixels=pixels, aoi_pixels=aoi_pixels, valid_pixels=valid_pixels,
        valid_share_of_aoi=round(min(1.0, valid_pixels / aoi_pixels) if aoi_pixels else 0.0, 4),
        nodata_share=round(1.0 - valid_share, 4),
        bands=[BandQuality(name=name, minimum=band.get("minimum"), maximum=band.get("maximum"), mean=band.get("mean"))
               for name, band in zip(bands, statistics, strict=True)],
    )
