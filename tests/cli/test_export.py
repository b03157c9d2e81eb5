"""`geoship export`, `geoship status` and `geoship demo` through the real command line and pipeline."""

import json
from dataclasses import replace

import pytest
import rasterio
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import SMALL_AOI

runner = CliRunner()


@pytest.fixture
def farms(geoship_home, sample_scene_paths):
    runner.invoke(app, ["projects", "create", "alps"])
    result = runner.invoke(app, ["scenes", "add", *map(str, sample_scene_paths), "--project", "alps"])
    assert result.exit_code == 0, result.stderr
    return "alps"


@pytest.fixture
def aoi_file(tmp_path):
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": SMALL_AOI}]}))
    return path


def test_export_without_wait_leaves_a_pending_row(farms, aoi_file):
    result = runner.invoke(app, ["export", "--project", farms, "--aoi", str(aoi_file), "--json"])
    assert result.exit_code == 0, result.stderr
    view = json.loads(result.stdout)
    assert (view["status"], view["progress"], view["error"], view["artifact"]) == ("pending", 0.0, None, None)
    assert [(t["kind"], t["status"]) for t in view["targets"]] == [("http", "pending")]
    status = json.loads(runner.invoke(app, ["status", str(view["id"]), "--json"]).stdout)
    assert status == view
    (line,) = json.loads(runner.invoke(app, ["logs", str(view["id"]), "--json"]).stdout)
    assert line["level"] == "info" and line["message"].startswith("pending: ordered by")
    shown = runner.invoke(app, ["logs", str(view["id"])])
    assert shown.exit_code == 0 and "pending: ordered by" in shown.stdout
    assert runner.invoke(app, ["logs", "99999"]).exit_code != 0  # not found, said as for status


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_export_wait_runs_it_and_prints_the_result(farms, aoi_file):
    result = runner.invoke(app, ["export", "--project", farms, "--aoi", str(aoi_file), "--color-correct",
                                 "--gamma", "1.3", "--srid", "32633", "--resolution", "100", "--wait", "--json"])
    assert result.exit_code == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["status"] == "success" and view["progress"] == 1.0
    assert view["targets"][0]["status"] == "success" and "/downloads/" in view["targets"][0]["result"]["url"]
    with rasterio.open(view["artifact"]) as out:
        assert out.crs.to_epsg() == 32633 and out.res == (100.0, 100.0) and out.dtypes[0] == "uint8"
    assert "tiles" in result.stderr  # the progress bar went to stderr, leaving stdout pure JSON


@pytest.mark.parametrize("args,needle", [
    (["--srid", "123456"], "srid: unknown CRS or EPSG code 123456"),
    (["--tool", "ndvi", "--bands", "swir16,red"], "no band(s) swir16"),
    (["--aoi", "/no/such.geojson"], "no such file"),
    (["--tool", "sepia"], "tool"),
    (["--stretch", "red:0"], "expected BAND:MIN:MAX"),
    (["--resolution", "1e308"], "resolution: 1e+308 is larger than the whole area"),
    (["--resolution", "1e-12"], "a GeoTIFF holds at most 4,294,967,295 px a side"),
])
def test_bad_export_requests_exit_2_and_write_nothing(farms, args, needle):
    result = runner.invoke(app, ["export", "--project", farms, *args])
    assert result.exit_code == 2, result.stdout
    assert needle in result.stderr
    missing = runner.invoke(app, ["status", "1"])
    assert missing.exit_code == 2 and "export 1 not found" in missing.stderr


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_the_demo_runs_a_real_export_end_to_end(geoship_home, monkeypatch):
    import cli.demo
    from cli.samples import DEMO_SCENES

    # The demo's own scenes at a quarter of their size keep the test quick; everything else is as shipped.
    monkeypatch.setattr(cli.demo, "DEMO_SCENES", tuple(replace(s, size_px=200, resolution=120.0) for s in DEMO_SCENES))
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert "success" in result.stdout and "/downloads/" in result.stdout
    artifacts = list((geoship_home / "artifacts").glob("export-*/export-*.tif"))
    assert len(artifacts) == 1
    samples = sorted(p.name for p in (geoship_home / "samples").glob("*.tif"))
    assert samples == ["alpine-foreland-east.tif", "alpine-foreland-west.tif"]


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_run_starts_a_pending_export_once(farms, aoi_file):
    view = json.loads(runner.invoke(app, ["export", "--project", farms, "--aoi", str(aoi_file), "--json"]).stdout)
    result = runner.invoke(app, ["run", str(view["id"]), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "success"
    again = runner.invoke(app, ["run", str(view["id"])])
    assert again.exit_code == 2 and "is not pending" in again.stderr
