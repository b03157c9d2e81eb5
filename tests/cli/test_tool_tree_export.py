"""`geoship export --tool-tree FILE`: a classified, coloured change map over two projects, end to end, and
refusals that exit 2 naming the node and write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from typer.testing import CliRunner

from cli.main import app
from models.tooltree import INDICES
from tests.conftest import SMALL_AOI

runner = CliRunner()


def ndvi(project: str | None) -> dict:
    source = {"type": "project", "bands": ["red", "nir"]}
    if project:
        source["project"] = project
    return {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": source}


def change_map(before: str | None, after: str) -> dict:
    return {"type": "output", "dtype": "uint8", "nodata": None, "input": {
        "type": "colormap", "classes": {"1": "#d7191c", "2": "#ffffbf", "3": "#1a9641"},
        "input": {"type": "classify", "default": None,
                  "rules": [{"max": -0.15, "value": 1}, {"min": -0.15, "max": 0.15, "value": 2}, {"min": 0.15, "value": 3}],
                  "input": {"type": "band_math", "name": "dndvi",
                            "inputs": {"before": ndvi(before), "after": ndvi(after)},
                            "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"},
                                                         {"band": "ndvi", "input": "before"}]}}}}}


@pytest.fixture
def two_dates(geoship_home, sample_scene_paths):
    """Projects 'alps' and 'alps-later', each of the two sample scenes in the same order (a 'change' of none)."""
    for name, paths in (("alps", sample_scene_paths), ("alps-later", sample_scene_paths)):
        assert runner.invoke(app, ["projects", "create", name]).exit_code == 0
        result = runner.invoke(app, ["scenes", "add", *map(str, paths), "--project", name])
        assert result.exit_code == 0, result.stderr


@pytest.fixture
def tree_file(tmp_path):
    def write(tree) -> str:
        path = tmp_path / "tree.json"
        path.write_text(json.dumps(tree))
        return str(path)
    return write


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_a_coloured_change_map_over_two_projects_is_exported_as_rgba(two_dates, tree_file, tmp_path):
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps(SMALL_AOI))
    # The first leaf names no project: --project fills it in.
    result = runner.invoke(app, ["export", "--tool-tree", tree_file(change_map(None, "alps-later")), "--project", "alps",
                                 "--aoi", str(aoi), "--srid", "32633", "--resolution", "240", "--wait", "--json"])
    assert result.exit_code == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["status"] == "success", view["error"]
    with rasterio.open(view["artifact"]) as out:
        assert out.count == 4 and out.dtypes[0] == "uint8" and out.nodata is None
        assert out.colorinterp[3] == ColorInterp.alpha
        pixels = out.read()
    opaque = pixels[3] == 255
    colours = {tuple(int(v) for v in pixels[:3, r, c]) for r, c in zip(*np.nonzero(opaque), strict=True)}
    assert opaque.any() and (~opaque).any()  # the AOI's inside is coloured, its outside transparent
    assert colours <= {(0xd7, 0x19, 0x1c), (0xff, 0xff, 0xbf), (0x1a, 0x96, 0x41)}
    # The same scenes on both dates: a change of exactly 0, so every coloured pixel is "stable".
    assert colours == {(0xff, 0xff, 0xbf)}
    assert (pixels[:3, ~opaque] == 0).all()


@pytest.mark.parametrize("tree,needle", [
    (change_map("alps", "nowhere"), "tool.input.input.input.inputs.after.input: project 'nowhere' not found"),
    (change_map(None, "alps"), "tool.input.input.input.inputs.before.input.project: this leaf names no project"),
    ({**change_map("alps", "alps"), "dtype": "float32"}, '"dtype": "uint8", "nodata": null'),
    ({"type": "band_math", "input": ndvi("alps"), "expr": {"op": "eval", "args": [{"band": "ndvi"}]}},
     "tool.input.band_math.expr.op.op"),
    ([1, 2, 3], "tool_tree: Input should be a valid dictionary"),
    ({"type": "colormap", "ramp": 5, "input": ndvi("alps")}, "a ramp is [[value"),
    ({"type": "focal", "stat": "mean", "radius": 100, "input": ndvi("alps")}, "tool.input.focal.radius"),
])
def test_bad_trees_exit_2_naming_the_node_and_write_nothing(two_dates, tree_file, tree, needle):
    result = runner.invoke(app, ["export", "--tool-tree", tree_file(tree)])
    assert result.exit_code == 2, result.stdout
    assert needle in result.stderr
    assert runner.invoke(app, ["status", "1"]).exit_code == 2  # no export was written


def test_a_tree_file_that_is_missing_or_not_json_exits_2(two_dates, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    for path, needle in ((tmp_path / "absent.json", "no such file"), (tmp_path / "broken.json", "is not valid JSON")):
        result = runner.invoke(app, ["export", "--tool-tree", str(path)])
        assert result.exit_code == 2 and needle in result.stderr


def test_the_tool_help_lists_the_index_registry_and_an_unknown_tool_exits_2(two_dates):
    from cli.exports import TOOL_HELP

    assert all(f"{name}: {index.formula}" in TOOL_HELP for name, index in INDICES.items())
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and "saved tool" in result.stdout
    refused = runner.invoke(app, ["export", "--project", "alps", "--tool", "sepia"])
    assert refused.exit_code == 2 and "tool 'sepia' not found" in refused.stderr
