"""A STAC Item (1.0.0, with the projection and file extensions) describing a rendered COG."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import shapely
from shapely.geometry import mapping

from ray_render.geometry import reproject_geometry
from ray_render.grid import OutputGrid

PROJECTION = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def stac_item(*, item_id: str, grid: OutputGrid, footprint, asset_href: str, size: int, sha256: str, bands: list[str],
              dtype: str, nodata: float | None, acquired: list[datetime], created: datetime) -> dict[str, Any]:
    """The Item of one COG: `footprint` is where it has data (in the grid's CRS); `acquired` the inputs' times.

    The Item's time is the inputs' acquisition time (a range when they differ); the checksum is a SHA-256
    multihash, as the file extension specifies.
    """
    outline = reproject_geometry(footprint, grid.crs, "EPSG:4326")
    properties: dict[str, Any] = {"created": _iso(created)}
    if not acquired:
        properties["datetime"] = _iso(created)
    elif min(acquired) == max(acquired):
        properties["datetime"] = _iso(acquired[0])
    else:
        properties.update(datetime=None, start_datetime=_iso(min(acquired)), end_datetime=_iso(max(acquired)))
    epsg = grid.crs.removeprefix("EPSG:")
    properties.update({
        "proj:epsg": int(epsg) if epsg.isdigit() else None,
        "proj:shape": [grid.height, grid.width],
        "proj:transform": list(grid.transform)[:6],
        "proj:bbox": list(grid.bounds),
    })
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [PROJECTION, FILE, RASTER], "id": item_id,
        "geometry": mapping(outline), "bbox": list(shapely.bounds(outline)), "properties": properties, "links": [],
        "assets": {"data": {
            "href": asset_href, "type": COG_MEDIA_TYPE, "roles": ["data"], "title": f"{item_id} ({', '.join(bands)})",
            "file:size": size, "file:checksum": "1220" + sha256,
            "raster:bands": [{"name": band, "data_type": dtype, **({} if nodata is None else {"nodata": nodata})}
                             for band in bands],
        }},
    }
