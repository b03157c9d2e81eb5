"""`geoship tools`: save a tool, list, show, share and remove it, and export it by name with --bind; refusals
exit 2 naming the slot or the node and write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from cli.main import app
from models.settings import get_settings
from tests.cli.test_tool_tree_export import ndvi
from tests.conftest import SMALL_AOI

runner = CliRunner()
SMOOTH = {"type": "focal", "stat": "mean", "radius": 1, "shape": "square",
          "input": {**ndvi(None), "input": {"type": "project", "slot": "input", "bands": ["red", "nir"],
                                           "reflectance": True}}}


@pytest.fixture
def saved(tmp_path, geoship_home, sample_scene_paths):
    """Project 'alps' of the two sample scenes, and the tool 'ndvi-smooth' (3 x 3 mean of NDVI, slot `input`)."""
    assert runner.invoke(app, ["projects", "create", "alps"]).exit_code == 0
    assert runner.invoke(app, ["scenes", "add", *map(str, sample_scene_paths), "--project", "alps"]).exit_code == 0
    path = tmp_path / "smooth.json"
    path.write_text(json.dumps(SMOOTH))
    result = runner.invoke(app, ["tools", "create", "ndvi-smooth", str(path), "--description", "NDVI, smoothed"])
    assert result.exit_code == 0, result.stderr
    assert "--bind input=PROJECT" in result.stdout
    return path


def as_user(monkeypatch, name: str) -> None:
    monkeypatch.setenv("GEOSHIP_USER", name)
    get_settings.cache_clear()


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_a_saved_tool_exports_exactly_like_the_tree_it_holds(saved, tmp_path):
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps(SMALL_AOI))
    bound = {**SMOOTH, "input": {**SMOOTH["input"], "input": {**SMOOTH["input"]["input"], "project": "alps"}}}
    bound["input"]["input"].pop("slot")
    tree = tmp_path / "bound.json"
    tree.write_text(json.dumps(bound))
    common = ["--aoi", str(aoi), "--srid", "32633", "--resolution", "240", "--wait", "--json"]
    by_tree = runner.invoke(app, ["export", "--tool-tree", str(tree), *common])
    by_name = runner.invoke(app, ["export", "--tool", "ndvi-smooth", "--bind", "input=alps", *common])
    assert by_tree.exit_code == 0 and by_name.exit_code == 0, by_tree.stderr + by_name.stderr
    views = [json.loads(r.stdout) for r in (by_tree, by_name)]
    assert [v["status"] for v in views] == ["success", "success"]
    with rasterio.open(views[0]["artifact"]) as a, rasterio.open(views[1]["artifact"]) as b:
        assert (a.width, a.height, a.transform, a.nodata) == (b.width, b.height, b.transform, b.nodata)
        first, second = a.read(1, masked=True), b.read(1, masked=True)
    assert np.array_equal(np.ma.getdata(first), np.ma.getdata(second))
    valid = ~np.ma.getmaskarray(second)
    assert valid.mean() > 0.3 and (~valid).any()  # the AOI masks the outside, after the focal step
    assert -1 <= second.min() and second.max() <= 1  # a mean of NDVI


def test_list_show_share_and_remove(saved, monkeypatch):
    listed = json.loads(runner.invoke(app, ["tools", "list", "--json"]).stdout)
    assert [(t["ref"], t["slots"], t["description"]) for t in listed] == [("ndvi-smooth", ["input"], "NDVI, smoothed")]
    shown = json.loads(runner.invoke(app, ["tools", "show", "ndvi-smooth", "--json"]).stdout)
    assert shown["tree"] == SMOOTH and shown["shared_with"] == []

    as_user(monkeypatch, "bea")
    assert runner.invoke(app, ["tools", "list", "--json"]).stdout.strip() == "[]"
    hidden = runner.invoke(app, ["tools", "show", "local/ndvi-smooth"])
    assert hidden.exit_code == 2 and "not found" in hidden.stderr
    as_user(monkeypatch, "local")
    shared = runner.invoke(app, ["tools", "share", "ndvi-smooth", "bea"])
    assert shared.exit_code == 0 and "--tool local/ndvi-smooth" in shared.stdout
    as_user(monkeypatch, "bea")
    assert json.loads(runner.invoke(app, ["tools", "show", "local/ndvi-smooth", "--json"]).stdout)["owner"] == "local"
    refused = runner.invoke(app, ["tools", "remove", "ndvi-smooth"])
    assert refused.exit_code == 2 and "you have no tool named 'ndvi-smooth'" in refused.stderr
    as_user(monkeypatch, "local")
    assert runner.invoke(app, ["tools", "remove", "ndvi-smooth"]).exit_code == 0
    assert runner.invoke(app, ["tools", "list", "--json"]).stdout.strip() == "[]"


@pytest.mark.parametrize("args,needle", [
    (["--tool", "ndvi-smooth"], "bind.input: slot 'input' is not bound"),
    (["--tool", "ndvi-smooth", "--bind", "input=nowhere"], "bind.input: project 'nowhere' not found"),
    (["--tool", "ndvi-smooth", "--bind", "input=alps", "--bind", "extra=alps"], "bind.extra: the tool has no slot"),
    (["--tool", "ndvi-smooth", "--bind", "input"], "expected SLOT=PROJECT"),
    (["--tool", "someone/ndvi-smooth", "--bind", "input=alps"], "tool 'someone/ndvi-smooth' not found"),
    (["--tool", "ndvi-smooth", "--bind", "input=alps", "--bands", "red"], "drop bands"),
])
def test_export_refusals_exit_2_and_write_nothing(saved, args, needle):
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 2, result.stdout
    assert needle in result.stderr
    assert runner.invoke(app, ["status", "1"]).exit_code == 2


def test_a_bad_tool_file_exits_2_naming_the_node(saved, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "terrain", "product": "slope", "input": SMOOTH["input"]["input"]}))
    result = runner.invoke(app, ["tools", "create", "bad", str(bad)])
    assert result.exit_code == 2 and "tool.input.terrain: terrain needs a one-band elevation input" in result.stderr
    assert runner.invoke(app, ["tools", "create", "missing", str(tmp_path / "nope.json")]).exit_code == 2
    schema = json.loads(runner.invoke(app, ["tools", "schema"]).stdout)
    assert "Focal" in schema["$defs"] and "Terrain" in schema["$defs"]
