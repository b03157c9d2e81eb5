"""Geometry helpers: parse GeoJSON AOIs and reproject polygons with densified edges."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape

from models.errors import InvalidAOI, InvalidRequest
from models.tooltree import BandMath, Leaf, Mask, MaskBy, ToolTree, uses_operator

# A polygon edge is split into pieces this many times shorter than the geometry's extent before
# reprojection, so that straight lines in one CRS follow the curve they become in another.
DENSIFY_PARTS = 100
# More vertices than this is a traced coastline, not an area of interest: refused, to keep masks cheap.
MAX_AOI_VERTICES = 10_000
# No CRS used on Earth has coordinates this large (metres, feet or degrees); beyond it GEOS's arithmetic
# (densifying, validity) loses its footing, so such a polygon is refused as a mistake.
MAX_COORDINATE = 1e10


def _check_vertex_count(geom):
    vertices = shapely.get_num_coordinates(geom)
    if vertices > MAX_AOI_VERTICES:
        raise InvalidAOI("aoi", f"the polygon has {vertices:,} vertices, more than the {MAX_AOI_VERTICES:,} allowed; "
                                "simplify it first")
    return geom


def _check_coordinates(geom) -> None:
    largest = float(np.max(np.abs(shapely.get_coordinates(geom))))
    if not largest <= MAX_COORDINATE:
        raise InvalidAOI("aoi", f"a coordinate of {largest:g} is beyond any CRS's range on Earth (at most "
                                f"{MAX_COORDINATE:g}); check the polygon's units and aoi_crs")


def parse_crs(value: str | int, field: str = "srid") -> ProjCRS:
    """A pyproj CRS from an EPSG code or any user input, or `InvalidRequest` naming the field."""
    try:
        return ProjCRS.from_epsg(value) if isinstance(value, int) else ProjCRS.from_user_input(value)
    except CRSError:
        raise InvalidRequest(field, f"unknown CRS or EPSG code {value!r}") from None


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(ProjCRS.from_user_input(src), ProjCRS.from_user_input(dst), always_xy=True)


def reproject_geometry(geom, src_crs: str, dst_crs: str):
    """`geom` reprojected from `src_crs` to `dst_crs`, with edges densified first."""
    if src_crs == dst_crs:
        return geom
    minx, miny, maxx, maxy = geom.bounds
    extent = max(maxx - minx, maxy - miny)
    if extent > 0:
        geom = shapely.segmentize(geom, extent / DENSIFY_PARTS)
    transformer = _transformer(src_crs, dst_crs)

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    out = shapely.transform(geom, _apply)
    if not np.all(np.isfinite(shapely.get_coordinates(out))):
        raise InvalidAOI("aoi", f"the area cannot be represented in {dst_crs} (it leaves the projection's domain)")
    return out.buffer(0) if not out.is_valid else out


def bounds_polygon(bounds, src_crs: str, dst_crs: str):
    """The rectangle `bounds` (left, bottom, right, top) in `src_crs` as a polygon in `dst_crs`."""
    return reproject_geometry(box(*bounds), src_crs, dst_crs)


def geojson_to_polygonal(data: Any):
    """A (Multi)Polygon from a GeoJSON geometry, Feature or FeatureCollection; refuses anything else."""
    if not isinstance(data, dict) or "type" not in data:
        raise InvalidAOI("aoi", "must be a GeoJSON geometry, Feature or FeatureCollection")
    kind = data["type"]
    if kind == "FeatureCollection":
        features = data.get("features") or []
        if not features:
            raise InvalidAOI("aoi", "the FeatureCollection has no features")
        parts = [geojson_to_polygonal(f) for f in features]
        return _check_vertex_count(shapely.union_all(parts))
    if kind == "Feature":
        if not data.get("geometry"):
            raise InvalidAOI("aoi", "the Feature has no geometry")
        return geojson_to_polygonal(data["geometry"])
    try:
        geom = shape(data)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise InvalidAOI("aoi", f"malformed {kind} geometry ({exc})") from None
    if not isinstance(geom, (Polygon, MultiPolygon)):
        raise InvalidAOI("aoi", f"must be a Polygon or MultiPolygon, not a {geom.geom_type}")
    if geom.is_empty:
        raise InvalidAOI("aoi", "the polygon is empty")
    _check_vertex_count(geom)
    _check_coordinates(geom)
    if not geom.is_valid:
        raise InvalidAOI("aoi", f"the polygon is invalid: {shapely.is_valid_reason(geom)}")
    if geom.area == 0:
        raise InvalidAOI("aoi", "the polygon has zero area")
    return geom


def to_geojson(geom) -> dict[str, Any]:
    """A GeoJSON geometry dict, always a MultiPolygon so consumers see one shape of data."""
    if isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    return mapping(geom)


def polygonal_part(geom):
    """Only the polygonal part of `geom` (intersections may add lines or points at edges)."""
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    return shapely.union_all(polys) if polys else Polygon()


def shares_area(area, other) -> bool:
    """Whether the (prepared) `area` and `other` overlap in more than an edge or a corner."""
    return area.intersects(other) and not area.touches(other)


def coverage(tree: ToolTree, grid, data_areas: bool = False) -> Any:
    """Where a tool tree's output on `grid` can have data (tiles elsewhere are never read).

    Leaves cover their scenes' footprints, or with `data_areas` the scenes' data areas where they have one (what
    a STAC item's geometry describes; the tiles to render keep the footprints, whose blocks the warp can reach);
    AOI masks cut their input's coverage to their polygon (or out of it); mask_by keeps what both its input and
    its `by` cover; any other node covers the union of its children's, except band math that tests `is_nodata`,
    which can make values where its inputs have none.
    """
    whole = box(*grid.bounds)
    found: dict[int, Any] = {}

    def scene_area(scene):
        if data_areas and scene.data_area is not None:
            return reproject_geometry(shape(scene.data_area), scene.crs, grid.crs)
        return bounds_polygon(scene.bounds, scene.crs, grid.crs)

    def cover(node):
        if id(node) in found:
            return found[id(node)]
        if isinstance(node, Leaf):
            area = shapely.union_all([scene_area(s) for s in node.scenes])
        elif isinstance(node, Mask):
            polygon = shape(node.geometry)
            area = cover(node.input).intersection(polygon) if node.keep == "inside" else cover(node.input).difference(polygon)
        elif isinstance(node, MaskBy):
            area = cover(node.input).intersection(cover(node.by))
        elif isinstance(node, BandMath) and any(uses_operator(e, "is_nodata") for e in node.expressions().values()):
            area = whole
        else:
            area = shapely.union_all([cover(child) for child in node.children()])
        found[id(node)] = area
        return area

    return polygonal_part(cover(tree.root).intersection(whole))
