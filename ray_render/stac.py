"""STAC 1.0.0 metadata of a render: an Item per COG (projection, file and raster extensions) and, for a
sharded export, a Collection tying the shards' Items and their VRT together."""

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


def stac_collection(*, collection_id: str, description: str, items: list[dict[str, Any]], item_hrefs: list[str],
                    vrt_href: str) -> dict[str, Any]:
    """The Collection of a sharded export: the union of its items' extents, links to them, the VRT as an asset."""
    west, south, east, north = (min(i["bbox"][0] for i in items), min(i["bbox"][1] for i in items),
                                max(i["bbox"][2] for i in items), max(i["bbox"][3] for i in items))
    times = sorted(t for i in items for t in (i["properties"].get("datetime"), i["properties"].get("start_datetime"),
                                               i["properties"].get("end_datetime")) if t)
    return {
        "type": "Collection", "stac_version": "1.0.0", "stac_extensions": [], "id": collection_id,
        "description": description, "license": "proprietary",
        "extent": {"spatial": {"bbox": [[west, south, east, north]]},
                   "temporal": {"interval": [[times[0] if times else None, times[-1] if times else None]]}},
        "links": [{"rel": "item", "href": href, "type": "application/geo+json"} for href in item_hrefs],
        "assets": {"mosaic": {"href": vrt_href, "type": "application/xml", "roles": ["data"],
                              "title": "every shard as one raster (GDAL VRT)"}},
    }


def in_collection(item: dict[str, Any], collection_id: str, collection_href: str) -> dict[str, Any]:
    """The item, linked to its collection."""
    links = [{"rel": "collection", "href": collection_href, "type": "application/json"},
             {"rel": "parent", "href": collection_href, "type": "application/json"}]
    return {**item, "collection": collection_id, "links": item["links"] + links}
