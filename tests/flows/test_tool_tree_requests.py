"""Requests with tool trees of their own: leaves bound to the projects and scenes they name, each authorised,
defaults filled in, every refusal naming the node and writing nothing, and stored rows of before still valid."""

from __future__ import annotations

import copy
from dataclasses import asdict

import numpy as np
import pytest
import shapely
from rasterio.windows import Window
from shapely.geometry import shape
from sqlmodel import func, select

from flows.services.submission import create_export, plan_export
from models.catalogue import add_scene, create_project, get_or_create_user
from models.errors import Forbidden, InvalidRequest, InvalidToolTree, NotFound
from models.schemas import ExportRequest
from models.tables import Export, ExportTarget
from models.tooltree import Mask, MaskBy, parse_tool_tree
from ray_render.grid import OutputGrid
from ray_render.inspect import inspect_scene
from ray_render.tile import TileRenderer
from tests.conftest import SMALL_AOI


def count_rows(session) -> tuple[int, int]:
    session.rollback()
    return (session.exec(select(func.count()).select_from(Export)).one(),
            session.exec(select(func.count()).select_from(ExportTarget)).one())


@pytest.fixture
def later(session, owner, sample_scene_paths):
    """A second project of ada's: the east scene alone, standing in for a later date."""
    project = create_project(session, owner=owner, name="alps-later")
    add_scene(session, owner=owner, project=project, name="east-later",
              info=asdict(inspect_scene(path=str(sample_scene_paths[1]))))
    session.commit()
    return project


def ndvi(source: dict) -> dict:
    return {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": source}


def change(before: dict, after: dict) -> dict:
    return {"type": "band_math", "name": "dndvi", "inputs": {"before": ndvi(before), "after": ndvi(after)},
            "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"}, {"band": "ndvi", "input": "before"}]}}


def leaf(project=None, bands=("red", "nir"), **fields) -> dict:
    node = {"type": "project", "bands": list(bands), **fields}
    return node if project is None else {**node, "project": project}


def request(tree: dict, **fields) -> ExportRequest:
    return ExportRequest(tool_tree=tree, resolution=480, **fields)


def test_a_change_tree_over_two_projects_binds_each_leaf_to_its_scenes(session, owner, project, later):
    tree = {"type": "output", "dtype": "float32", "nodata": -9999,
            "input": change(leaf("alps"), leaf("alps-later"))}
    plan = plan_export(session, owner=owner, request=request(tree, aoi=SMALL_AOI))
    sources = plan.estimate.sources
    assert [(s.node, s.project, s.scenes) for s in sources] == [
        ("tool.input.input.inputs.before.input", "alps", ["alpine-foreland-west", "alpine-foreland-east"]),
        ("tool.input.input.inputs.after.input", "alps-later", ["east-later"]),
    ]
    assert all(s.bands == ["red", "nir"] and s.resampling == "bilinear" for s in sources)
    export = create_export(session, owner=owner, request=request(tree, aoi=SMALL_AOI))
    stored = parse_tool_tree(export.tool)
    assert [leaf.project_id for leaf in stored.sources()] == [project.id, later.id]
    assert export.project_id == project.id  # the first leaf's, when the request names none
    assert isinstance(stored.root.input, Mask) and stored.root.output_bands() == ["dndvi"]


def test_the_request_project_fills_the_leaves_that_name_none(session, owner, project, later):
    tree = change(leaf(), leaf("alps-later"))
    stored = parse_tool_tree(create_export(session, owner=owner, request=request(tree, project="alps")).tool)
    assert [s.project for s in stored.sources()] == ["alps", "alps-later"]
    assert stored.root.dtype == "float32" and stored.root.nodata == -9999  # the default output


def test_a_scene_leaf_reads_one_scene_by_id(session, owner, project):
    scene_id = project_scene_ids(session, project)[1]
    tree = ndvi({"type": "scene", "scene": scene_id, "bands": ["red", "nir"]})
    plan = plan_export(session, owner=owner, request=request(tree))
    (source,) = plan.estimate.sources
    assert (source.kind, source.scene_id, source.scenes) == ("scene", scene_id, ["alpine-foreland-east"])


def project_scene_ids(session, project) -> list[int]:
    from models.catalogue import project_scenes

    return [s.id for s in project_scenes(session, project=project)]


def test_a_mask_band_leaf_reads_with_nearest_unless_it_says_otherwise(session, owner, project):
    tree = {"type": "mask_by", "input": leaf("alps"), "by": leaf("alps", ["nir"]),
            "remove_where": {"range": [0, 100]}}
    stored = parse_tool_tree(create_export(session, owner=owner, request=request(tree)).tool)
    (node,) = stored.find(MaskBy)
    assert (node.input.resampling, node.by.resampling) == ("bilinear", "nearest")
    cubic = copy.deepcopy(tree)
    cubic["by"]["resampling"] = "cubic"
    stored = parse_tool_tree(create_export(session, owner=owner, request=request(cubic, resampling="average")).tool)
    assert (stored.sources()[0].resampling, stored.sources()[1].resampling) == ("average", "cubic")


def test_a_colour_map_without_an_output_root_is_rgba(session, owner, project):
    tree = {"type": "colormap", "ramp": "rdylgn", "range": [-1, 1], "input": ndvi(leaf("alps"))}
    plan = plan_export(session, owner=owner, request=request(tree))
    assert plan.tree.is_rgba() and plan.tree.root.dtype == "uint8" and plan.tree.root.nodata is None
    assert plan.estimate.bands == ["red", "green", "blue", "alpha"]


def test_a_trees_own_mask_is_reprojected_into_the_output_crs(session, owner, project):
    tree = {"type": "mask", "keep": "outside", "geometry": SMALL_AOI, "input": leaf("alps")}
    stored = parse_tool_tree(create_export(session, owner=owner, request=request(tree, srid=32632)).tool)
    (mask,) = stored.find(Mask)
    assert mask.crs == "EPSG:32632" and mask.keep == "outside"
    from pyproj import Transformer

    lon, lat = shape(SMALL_AOI).centroid.coords[0]
    expected = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(lon, lat)
    centroid = shape(mask.geometry).centroid
    assert abs(centroid.x - expected[0]) < 50 and abs(centroid.y - expected[1]) < 50  # metres of UTM 32N
    assert shapely.is_valid(shape(mask.geometry))


def private_project_of_eve(session, sample_scene_paths, *, public: bool):
    eve = get_or_create_user(session, name="eve")
    hidden = create_project(session, owner=eve, name="eves", visibility="public" if public else "private")
    add_scene(session, owner=eve, project=hidden, name="eve-scene", info=asdict(inspect_scene(path=str(sample_scene_paths[0]))))
    session.commit()


REFUSED = [
    ("unknown project", change(leaf("alps"), leaf("nope")), NotFound,
     "tool.inputs.after.input: project 'nope' not found"),
    ("no project anywhere", ndvi(leaf()), InvalidToolTree, "tool.input.project: this leaf names no project"),
    ("files instead of a project", ndvi(leaf("alps", scenes=[{"name": "x", "uri": "/etc/passwd"}])), InvalidToolTree,
     "tool.input.scenes: a tool tree names the projects or scenes it reads"),
    ("a project id that is not one", ndvi(leaf(True)), InvalidToolTree, "tool.input.project: must be a project name or id"),
    ("a scene id that is not one", ndvi({"type": "scene", "scene": "12; drop", "bands": ["red", "nir"]}),
     InvalidToolTree, "tool.input.scene: must be a scene id"),
    ("an unknown scene", ndvi({"type": "scene", "scene": 10**6, "bands": ["red", "nir"]}), NotFound,
     "tool.input: scene 1000000 not found"),
    ("a band the scenes lack", ndvi(leaf("alps", ["red", "swir16"])), InvalidToolTree,
     "no band(s) swir16"),
    ("a malformed mask", {"type": "mask", "geometry": {"type": "Point", "coordinates": [12, 46]}, "input": leaf("alps")},
     InvalidToolTree, "tool.geometry: must be a Polygon or MultiPolygon"),
    ("an output without input", {"type": "output", "dtype": "uint8"}, InvalidToolTree, "the tree reads nothing"),
    ("a focal radius over the limit", {"type": "focal", "stat": "mean", "radius": 65, "input": leaf("alps")},
     InvalidToolTree, "tool.input.focal.radius: Input should be less than or equal to 64"),
    ("terrain of two bands", {"type": "terrain", "product": "slope", "input": leaf("alps")}, InvalidToolTree,
     "tool.input.terrain: terrain needs a one-band elevation input, but it makes 2 bands"),
]


@pytest.mark.parametrize("tree,error,needle", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_trees_name_the_leaf_and_write_nothing(session, owner, project, tree, error, needle):
    with pytest.raises(error) as info:
        create_export(session, owner=owner, request=request(tree))
    assert needle in str(info.value)
    assert count_rows(session) == (0, 0)


def test_every_leaf_is_authorised(session, owner, project, sample_scene_paths):
    private_project_of_eve(session, sample_scene_paths, public=False)
    with pytest.raises(NotFound, match="tool.inputs.after.input: project 'eves' not found"):
        create_export(session, owner=owner, request=request(change(leaf("alps"), leaf("eves"))))
    session.rollback()
    eve = get_or_create_user(session, name="eve")
    public = create_project(session, owner=eve, name="eves-public", visibility="public")
    add_scene(session, owner=eve, project=public, name="eve-private-scene",
              info=asdict(inspect_scene(path=str(sample_scene_paths[1]))))  # the scene itself stays private
    session.commit()
    with pytest.raises(Forbidden, match="tool.inputs.after.input: you may not read scene.s. eve-private-scene"):
        create_export(session, owner=owner, request=request(change(leaf("alps"), leaf("eves-public"))))
    assert count_rows(session) == (0, 0)


def test_a_request_needs_a_project_or_a_tree():
    with pytest.raises(ValueError, match="give a `project` for a named tool"):
        ExportRequest()
    with pytest.raises(ValueError, match="drop tool"):
        ExportRequest(tool="ndvi", tool_tree=ndvi(leaf("alps")))


def test_rows_stored_before_leaves_named_projects_still_parse_and_render_the_same(session, owner, project):
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", tool="ndvi", aoi=SMALL_AOI,
                                                                       resolution=480))
    old = copy.deepcopy(export.tool)  # what the previous schemas stored: no leaf `project`, `resampling`, `slot` or mask `keep`
    mask = old["input"]
    source = mask["input"]["input"]
    assert mask["type"] == "mask" and source["type"] == "project"
    for key in ("project", "resampling", "slot"):
        assert source.pop(key) is None
    assert mask.pop("keep") == "inside"
    assert set(source) == {"type", "project_id", "scenes", "bands", "reflectance"}
    grid = OutputGrid.from_dict(export.grid)
    whole = Window(0, 0, grid.width, grid.height)
    with TileRenderer(old, grid, resampling="bilinear") as before, TileRenderer(export.tool, grid, "bilinear") as now:
        old_pixels, new_pixels = before.render(whole), now.render(whole)
    assert (old_pixels != -9999).mean() > 0.2 and np.array_equal(old_pixels, new_pixels)


def test_a_tool_tree_may_not_carry_named_tool_options(session, owner, project):
    with pytest.raises(ValueError, match="drop bands"):
        ExportRequest(tool_tree=ndvi(leaf("alps")), bands=["red"])
    with pytest.raises(InvalidRequest):
        plan_export(session, owner=owner, request=ExportRequest(tool_tree=ndvi(leaf("alps")), compression="webp"))


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_the_prefect_ui_form_takes_a_tool_tree_without_a_project(session, owner, project, later):
    from prefect.utilities.callables import parameter_schema

    from flows.export_flow import export_flow
    from models.status import ExportStatus

    schema = parameter_schema(export_flow).model_dump()
    form = schema["definitions"]["ExportRequest"]
    assert "tool_tree" in form["properties"] and "project" not in form.get("required", [])
    tree = {"type": "colormap", "ramp": "rdylgn", "range": [-0.5, 0.5], "input": change(leaf("alps"), leaf("alps-later"))}
    result = export_flow(request=ExportRequest(tool_tree=tree, aoi=SMALL_AOI, resolution=480), user=owner.name)
    session.expire_all()
    export = session.get(Export, result["export_id"])
    assert export.status == ExportStatus.success, export.error
    assert result["render"]["bands"] == ["red", "green", "blue", "alpha"]
