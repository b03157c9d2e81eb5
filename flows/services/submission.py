"""Turn an export request into a pending export row: authorise, preflight, build the tool tree, insert.

This is the one entry point the CLI and the HTTP API share. A refused request writes nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlmodel import Session

from delivery.registry import DELIVERIES
from delivery.webhook_addresses import check_webhook_url
from delivery.webhook_settings import ensure_webhook_secret
from flows.services.binding import bind_tool_tree, leaf_default_resampling, readable_project_scenes
from models.catalogue import find_project, scene_source
from models.errors import InvalidAOI, InvalidRequest, InvalidToolTree
from models.saved_tools import find_tool
from models.schemas import LOSSY_COMPRESSIONS, Estimate, ExportRequest, SourceView
from models.settings import get_settings
from models.status import ExportStatus, Priority
from models.tables import Export, ExportLog, ExportTarget, Project, Scene, User
from models.tooltree import (
    INDICES,
    ColorCorrect,
    Identity,
    Mask,
    Output,
    ProjectSource,
    Stretch,
    ToolTree,
    parse_tool_tree,
    split_output,
    walk_json,
)
from ray_render.geometry import (
    bounds_polygon,
    coverage,
    geojson_to_polygonal,
    parse_crs,
    polygonal_part,
    reproject_geometry,
    to_geojson,
)
from ray_render.grid import MAX_SIDE_PX, OutputGrid, native_resolution_in, plan_grid
from ray_render.shards import count_shards
from ray_render.stats import percentile_stretch

DEFAULT_RGB_BANDS = ["red", "green", "blue"]
INDEX_NODATA = -9999.0


def _output_crs(srid: int) -> str:
    crs = parse_crs(srid, "srid")
    if not crs.is_projected and not crs.is_geographic:
        raise InvalidRequest("srid", f"EPSG:{srid} is not a horizontal CRS")
    return f"EPSG:{srid}"


def _footprint(scenes: list[Scene], dst_crs: str):
    return shapely.union_all([bounds_polygon(s.bounds, s.crs_wkt, dst_crs) for s in scenes])


def _area(request: ExportRequest, scenes: list[Scene], dst_crs: str):
    """(AOI, extent) in the output CRS: the AOI and its part over the imagery, or (None, the imagery's footprint)
    when no AOI is given. With `extent="project"` the extent is the imagery's footprint whatever the AOI."""
    footprint = _footprint(scenes, dst_crs)
    if request.aoi is None:
        return None, footprint
    aoi_crs = parse_crs(request.aoi_crs, "aoi_crs").to_string()
    polygon = geojson_to_polygonal(request.aoi)
    _refuse_wraparound(reproject_geometry(polygon, aoi_crs, "EPSG:4326"))
    aoi = reproject_geometry(polygon, aoi_crs, dst_crs)
    overlap = polygonal_part(aoi.intersection(footprint))
    if overlap.is_empty or overlap.area == 0:
        raise InvalidAOI("aoi", "the area of interest does not overlap the project's scenes")
    return aoi, footprint if request.extent == "project" else overlap


def _refuse_wraparound(lonlat) -> None:
    """AOIs across the antimeridian or reaching a pole have no single sensible extent in most output CRSs:
    refused, saying what to do instead."""
    west, south, east, north = lonlat.bounds
    if east - west > 180:
        raise InvalidAOI("aoi", "the area of interest crosses the antimeridian (it spans longitudes "
                                f"{west:g} to {east:g}); export each side of 180 degrees separately")
    if north >= 89.9 or south <= -89.9:
        raise InvalidAOI("aoi", "the area of interest reaches a pole; use a polar output CRS such as EPSG:3413 or "
                                "EPSG:3031 and an AOI that stops short of 90 degrees")


def _grid(dst_crs: str, area, resolution: float) -> OutputGrid:
    """The output grid over `area`; a pixel larger than the whole area is a mistake, not a one-pixel export."""
    left, bottom, right, top = area.bounds
    side = max(right - left, top - bottom)
    if resolution > side:
        raise InvalidRequest("resolution", f"{resolution:g} is larger than the whole area ({side:.6g} units of "
                                           f"{dst_crs} across); give the pixel size in the output CRS's units")
    if not side / resolution <= MAX_SIDE_PX:
        raise InvalidRequest("resolution", f"{resolution:g} would make the output {side / resolution:.3g} px across; a "
                                           f"GeoTIFF holds at most {MAX_SIDE_PX:,} px a side")
    return plan_grid(dst_crs, area.bounds, resolution)


def _resolution(request: ExportRequest, scenes: list[Scene], dst_crs: str) -> float:
    if request.resolution is not None:
        return request.resolution
    return min(native_resolution_in(dst_crs, s.crs_wkt, s.width, s.height, s.bounds) for s in scenes)


def _bands(request: ExportRequest, scenes: list[Scene]) -> list[str]:
    available = {b["name"] for s in scenes for b in s.bands}
    if request.tool == "rgb":
        bands = request.bands or DEFAULT_RGB_BANDS
    else:
        wanted = INDICES[request.tool].bands
        bands = request.bands or list(wanted)
        if len(bands) != len(wanted):
            raise InvalidRequest("bands", f"{request.tool} takes {len(wanted)} bands ({', '.join(wanted)}), got {len(bands)}")
    missing = [b for b in bands if b not in available]
    if missing:
        raise InvalidRequest("bands", f"the project's scenes have no band(s) {', '.join(missing)} "
                                      f"(available: {', '.join(sorted(available))})")
    return list(bands)


def default_resampling(request: ExportRequest) -> str:
    """Nearest for true values (plain RGB or band selections: every output pixel is a source pixel); bilinear
    for continuous products (colour-corrected pictures, indices, band math), where it avoids blockiness."""
    plain = request.tool == "rgb" and request.color_correct is None and request.tool_tree is None
    return "nearest" if plain else "bilinear"


def skipped_scenes(tree: ToolTree) -> dict[str, list[str]]:
    """For each band the tree reads, the scenes that lack it (they contribute nothing to that band)."""
    skipped: dict[str, list[str]] = {}
    for source in tree.sources():
        for band in source.bands:
            lacking = [s.name for s in source.scenes if s.band(band) is None]
            if lacking:
                skipped.setdefault(band, []).extend(lacking)
    return skipped


def build_tool_tree(request: ExportRequest, scenes: list[Scene], aoi, dst_crs: str, project_id: int | None) -> ToolTree:
    """The one-off tool tree of a project export: Output(Mask?(<tool>(ProjectSource)))."""
    bands = _bands(request, scenes)
    sources = [scene_source(s) for s in scenes]
    source = ProjectSource(project_id=project_id, scenes=sources, bands=bands)
    if request.tool == "rgb" and request.color_correct is None:
        dtypes = {s.dtype for s in scenes}
        dtype = str(np.result_type(*dtypes))
        nodatas = {s.nodata for s in scenes if s.nodata is not None}
        node, output = Identity(input=source), dict(dtype=dtype, nodata=nodatas.pop() if len(nodatas) == 1 else 0)
    elif request.tool == "rgb":
        cc = request.color_correct
        if cc.stretch:
            stretch = [Stretch(band=s.band, min=s.min, max=s.max) for s in cc.stretch]
        else:
            stretch = percentile_stretch(sources, bands, *cc.percentiles)
        node = ColorCorrect(input=source, stretch=stretch, gamma=cc.gamma)
        output = dict(dtype="uint8", nodata=0, scale=255.0)
    else:
        # Indices are computed on physical values: each band's scale and offset applied first.
        source = source.model_copy(update={"reflectance": True})
        node = INDICES[request.tool].node(source, bands)
        output = dict(dtype="float32", nodata=INDEX_NODATA)
    if aoi is not None:
        node = Mask(input=node, geometry=to_geojson(aoi), crs=dst_crs)
    root = Output(input=node, **output)
    # Round-trip through the parser: what is stored is exactly what the renderer will accept.
    return parse_tool_tree(root.model_dump(mode="json"))


def _reproject_masks(data: dict[str, Any], dst_crs: str) -> None:
    """A tree's own `mask` nodes, checked and reprojected into the output CRS in place (as the AOI is)."""
    for path, node in walk_json(data):
        if node.get("type") != "mask":
            continue
        crs = node.get("crs", "EPSG:4326")
        if not isinstance(crs, str | int) or isinstance(crs, bool):
            raise InvalidToolTree(f"{path}.crs", f"must be a CRS such as \"EPSG:4326\", not {crs!r}")
        try:
            polygon = geojson_to_polygonal(node.get("geometry"))
            source_crs = parse_crs(crs, f"{path}.crs").to_string()
            node.update(geometry=to_geojson(reproject_geometry(polygon, source_crs, dst_crs)), crs=dst_crs)
        except InvalidAOI as exc:
            raise InvalidToolTree(f"{path}.geometry", exc.reason) from None


def custom_tool_tree(data: dict[str, Any], aoi, dst_crs: str, resampling: str) -> ToolTree:
    """A user's own tool tree with its leaves already bound (`flows.services.binding`), completed: its masks in the
    output CRS, each leaf's resampling, the AOI mask under the root, and an `output` root when it has none
    (float32 with nodata -9999; RGBA uint8 for a colour map)."""
    output, data = split_output(copy.deepcopy(data))
    _reproject_masks(data, dst_crs)
    leaf_default_resampling(data, resampling)
    if aoi is not None:
        data = {"type": "mask", "geometry": to_geojson(aoi), "crs": dst_crs, "input": data}
    return parse_tool_tree({**output, "input": data})


def source_views(tree: ToolTree, projects: dict[int, Project], resampling: str) -> list[SourceView]:
    """What each leaf of `tree` reads, with its path in the tree."""
    paths = [path for path, node in walk_json(tree.to_json()) if node.get("type") in ("project", "scene")]
    views = []
    for path, leaf in zip(paths, tree.sources(), strict=True):
        project = projects.get(getattr(leaf, "project_id", None) or -1)
        views.append(SourceView(
            node=path, kind=leaf.type, project_id=project.id if project else None,
            project=project.name if project else None, scene_id=getattr(leaf, "scene", None),
            slot=getattr(leaf, "slot", None),
            scenes=[s.name for s in leaf.scenes], bands=list(leaf.bands), resampling=leaf.resampling or resampling,
        ))
    return views


def _shards(tree: ToolTree, grid: OutputGrid) -> int:
    """The files the export will be written as (1, or its shards with data), from the render settings."""
    settings = get_settings()
    return count_shards(grid, tree.root, coverage(tree, grid), settings.tile_size, settings.shard_max_bytes)


def _check_compression(compression: str, tree: ToolTree) -> None:
    """JPEG and WEBP take 8-bit RGB (three uint8 bands) only; say what the tool gives and what to use instead."""
    if compression not in LOSSY_COMPRESSIONS:
        return
    bands, dtype = tree.root.output_bands(), tree.root.dtype
    if dtype != "uint8" or len(bands) != 3:
        raise InvalidRequest("compression", f"{compression} compresses 8-bit RGB only (3 uint8 bands), but this export "
                                            f"gives {len(bands)} {dtype} band(s); colour-correct an RGB export to 8 bits "
                                            f"or use deflate, zstd or lzw")


def estimate_bytes(grid: OutputGrid, tree: ToolTree) -> int:
    """Uncompressed size of the output."""
    return grid.pixels * len(tree.root.output_bands()) * np.dtype(tree.root.dtype).itemsize


def _check_targets(session: Session, owner: User, request: ExportRequest, estimate: int) -> None:
    """Each target's settings, credential (the owner's, of the right kind) and room for the estimate."""
    for position, target in enumerate(request.targets):
        field = f"targets.{position}"
        if target.kind not in DELIVERIES:
            available = ", ".join(kind.value for kind in DELIVERIES)
            raise InvalidRequest(f"{field}.kind", f"delivery to {target.kind.value} is not available "
                                                  f"on this server (available: {available})")
        DELIVERIES[target.kind].check(session, owner_id=owner.id, target=target, field=field, estimate_bytes=estimate)


@dataclass(frozen=True)
class ExportPlan:
    """A validated export request: everything needed to insert it, nothing written yet."""

    project: Project | None
    tree: ToolTree
    grid: OutputGrid
    aoi: Any
    resolution: float
    resampling: str
    estimate: Estimate


def plan_export(session: Session, *, owner: User, request: ExportRequest, check_limit: bool = True) -> ExportPlan:
    """Authorise and preflight `request`: every project and scene it reads, AOI, grid, tool tree, size, targets.

    Raises the error naming the problem (`NotFound`, `Forbidden`, `InvalidRequest`...); writes nothing.
    """
    resampling = request.resampling or default_resampling(request)
    tree_data = request.tool_tree
    if request.uses_saved_tool():
        tree_data = find_tool(session, user=owner, ref=request.tool).tree
    if tree_data is not None:
        bound = bind_tool_tree(session, owner=owner, data=tree_data, default_project=request.project,
                               slots=request.bind)
        project = (find_project(session, user=owner, ref=request.project) if request.project is not None
                   else bound.first_project())
        scenes, projects = list(bound.scenes.values()), bound.projects
        if not scenes:
            raise InvalidToolTree("tool", "the tree reads nothing: give it a project or scene leaf")
    else:
        project = find_project(session, user=owner, ref=request.project)
        scenes = readable_project_scenes(session, owner, project)
        projects = {project.id: project}
    dst_crs = _output_crs(request.srid)
    aoi, area = _area(request, scenes, dst_crs)
    resolution = _resolution(request, scenes, dst_crs)
    grid = _grid(dst_crs, area, resolution)
    if tree_data is not None:
        tree = custom_tool_tree(bound.data, aoi, dst_crs, resampling)
    else:
        tree = build_tool_tree(request, scenes, aoi, dst_crs, project.id)
    _check_compression(request.compression, tree)
    size = estimate_bytes(grid, tree)
    settings = get_settings()
    limit = settings.max_export_bytes
    priority = request.priority or (Priority.interactive if size <= settings.interactive_max_bytes else Priority.bulk)
    estimate = Estimate(width=grid.width, height=grid.height, pixels=grid.pixels, bands=tree.root.output_bands(),
                        dtype=tree.root.dtype, bytes=size, shards=_shards(tree, grid), limit_bytes=limit,
                        within_limit=size <= limit, output_srid=request.srid, resolution=resolution,
                        sources=source_views(tree, projects, resampling), priority=priority)
    if check_limit and size > limit:
        raise InvalidRequest("aoi", f"the export would be {size:,} bytes ({grid.width} x {grid.height} px), "
                                    f"over the limit of {limit:,} bytes; use a smaller area or a coarser resolution")
    _check_targets(session, owner, request, size)
    if request.webhook_url is not None:
        check_webhook_url(request.webhook_url)
    return ExportPlan(project=project, tree=tree, grid=grid, aoi=aoi, resolution=resolution, resampling=resampling,
                      estimate=estimate)


def create_export(session: Session, *, owner: User, request: ExportRequest) -> Export:
    """Validate `request` and insert its export row (status `pending`) with its targets."""
    plan = plan_export(session, owner=owner, request=request)
    export = Export(
        owner_id=owner.id, project_id=plan.project.id if plan.project else None, tool=plan.tree.to_json(),
        output_srid=request.srid,
        resolution=plan.resolution, grid=plan.grid.to_dict(),
        resampling=plan.resampling, compression=request.compression, priority=plan.estimate.priority,
        result={"skipped_scenes": skipped} if (skipped := skipped_scenes(plan.tree)) else None,
        webhook_url=request.webhook_url,
    )
    session.add(export)
    session.flush()
    if request.webhook_url is not None:
        ensure_webhook_secret(session, owner)  # events are signed with it (the API shows a new one once)
    for position, target in enumerate(request.targets):
        session.add(ExportTarget(export_id=export.id, position=position, kind=target.kind,
                                 config=target.config, credential_id=target.credential_id))
    kinds = ", ".join(t.kind.value for t in request.targets) or "none"
    session.add(ExportLog(export_id=export.id, status=ExportStatus.pending, message=(
        f"pending: ordered by {owner.name}: {plan.grid.width} x {plan.grid.height} px in {plan.grid.crs}, about "
        f"{plan.estimate.bytes:,} bytes uncompressed, {export.priority.value}; targets: {kinds}")))
    session.flush()
    return export
