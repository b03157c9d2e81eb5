"""`geoship projects` and `geoship scenes`: the catalogue through the real command line."""

import json

import numpy as np
import pytest
import rasterio
from shapely.geometry import box, shape
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from models.db import get_engine
from models.tables import Scene

runner = CliRunner()


def geoship(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def rgbn(make_raster):
    return make_raster("rgbn.tif", np.full((4, 8, 8), 500, np.uint16), nodata=0)


def test_projects_are_created_listed_and_unique(geoship_home):
    assert geoship("projects", "create", "farms").exit_code == 0
    duplicate = geoship("projects", "create", "farms")
    assert duplicate.exit_code == 2 and "project 'farms' already exists" in duplicate.stderr
    listed = json.loads(geoship("projects", "list", "--json").stdout)
    assert [(p["name"], p["scenes"]) for p in listed] == [("farms", 0)]


def test_scenes_are_added_in_mosaic_order_with_their_metadata(geoship_home, rgbn, make_raster):
    geoship("projects", "create", "farms")
    named = make_raster("named.tif", np.ones((2, 4, 4), np.uint8), bands=["red", "nir"], crs="EPSG:32614", res=5)
    red = make_raster("B4.TIF", np.ones((1, 6, 6), np.uint16), res=30)
    nir = make_raster("B5.TIF", np.ones((1, 6, 6), np.uint16), res=30)
    assert geoship("scenes", "add", str(rgbn), "--project", "farms", "--bands", "red,green,blue,nir").exit_code == 0
    assert geoship("scenes", "add", str(named), "--project", "farms").exit_code == 0
    result = geoship("scenes", "add", "--project", "farms", "--name", "LC08", "--band", f"red={red}",
                     "--band", f"nir={nir}", "--nodata", "0", "--acquired", "2024-06-01T10:30:00")
    assert result.exit_code == 0, result.stderr
    bad_time = geoship("scenes", "add", str(rgbn), "--project", "farms", "--bands", "red,green,blue,nir", "--acquired", "June")
    assert bad_time.exit_code == 2 and "expected an ISO 8601 time" in bad_time.stderr

    shown = json.loads(geoship("projects", "show", "farms", "--json").stdout)
    scenes = shown["scenes"]
    assert [(s["order"], s["name"]) for s in scenes] == [(0, "rgbn"), (1, "named"), (2, "LC08")]
    assert [b["name"] for b in scenes[0]["bands"]] == ["red", "green", "blue", "nir"]
    assert (scenes[1]["epsg"], scenes[1]["resolution"], scenes[1]["dtype"]) == (32614, [5.0, 5.0], "uint8")
    assert [(b["name"], b["uri"].rsplit("/", 1)[1]) for b in scenes[2]["bands"]] == [("red", "B4.TIF"), ("nir", "B5.TIF")]
    assert scenes[2]["nodata"] == 0 and scenes[0]["nodata"] == 0
    assert scenes[2]["acquired_at"].startswith("2024-06-01 10:30:00") and scenes[0]["acquired_at"] is None
    table = geoship("projects", "show", "farms")
    assert table.exit_code == 0 and "LC08" in table.stdout


@pytest.mark.parametrize("args,needle", [
    (["scenes", "add", "--project", "farms"], "give at least one file"),
    (["scenes", "add", "--project", "farms", "--band", "red"], "expected NAME=FILE"),
    (["scenes", "add", "--project", "farms", "--band", "red=/x.tif"], "needs --name"),
    (["scenes", "add", "/no/such.tif", "--project", "farms", "--bands", "red"], "cannot read"),
    (["scenes", "add", "{rgbn}", "--project", "nope", "--bands", "red,green,blue,nir"], "project 'nope' not found"),
    (["scenes", "add", "{rgbn}", "--project", "farms", "--bands", "red,red,blue,nir"], "must be unique"),
    (["projects", "show", "nope"], "project 'nope' not found"),
])
def test_bad_catalogue_input_is_refused_with_exit_code_2(geoship_home, rgbn, args, needle):
    geoship("projects", "create", "farms")
    result = geoship(*[a.replace("{rgbn}", str(rgbn)) for a in args])
    assert result.exit_code == 2
    assert needle in result.stderr
    assert json.loads(geoship("projects", "show", "farms", "--json").stdout)["scenes"] == []


def test_reordering_changes_mosaic_priority_and_needs_every_scene(geoship_home, rgbn, make_raster):
    geoship("projects", "create", "farms")
    other = make_raster("other.tif", np.full((4, 8, 8), 9, np.uint16), nodata=0)
    geoship("scenes", "add", str(rgbn), str(other), "--project", "farms", "--bands", "red,green,blue,nir")
    assert geoship("projects", "reorder", "farms", "other", "rgbn").exit_code == 0
    shown = json.loads(geoship("projects", "show", "farms", "--json").stdout)
    assert [s["name"] for s in shown["scenes"]] == ["other", "rgbn"]
    partial = geoship("projects", "reorder", "farms", "other")
    assert partial.exit_code == 2 and "exactly once" in partial.stderr


def test_scenes_in_s3_and_on_http_servers_are_added_by_url(geoship_home, rgbn, s3_server, monkeypatch):
    from tests.support.range_server import RangeServer

    bucket = s3_server.new_bucket()
    s3_server.client().upload_file(str(rgbn), bucket, "2024/rgbn.tif")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.reader.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.reader.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    server = RangeServer(rgbn.parent).start()
    try:
        geoship("projects", "create", "farms")
        result = geoship("scenes", "add", f"s3://{bucket}/2024/rgbn.tif", f"{server.url}/rgbn.tif", "--project", "farms",
                         "--bands", "red,green,blue,nir")
        assert result.exit_code == 0, result.stderr
        missing = geoship("scenes", "add", f"s3://{bucket}/2024/gone.tif", "--project", "farms", "--bands", "red")
        assert missing.exit_code == 2 and f"s3://{bucket}/2024/gone.tif" in missing.stderr
    finally:
        server.stop()
    scenes = json.loads(geoship("projects", "show", "farms", "--json").stdout)["scenes"]
    assert [s["name"] for s in scenes] == ["rgbn", "rgbn"]
    assert [s["bands"][0]["uri"] for s in scenes] == [f"s3://{bucket}/2024/rgbn.tif", f"{server.url}/rgbn.tif"]
    assert scenes[0]["epsg"] == scenes[1]["epsg"] == 32618
    # Their data areas were traced over the network as from a local file: the whole 8 x 8 px raster holds data.
    with Session(get_engine()) as session:
        areas = [shape(scene.data_area) for scene in session.exec(select(Scene)).all()]
    with rasterio.open(rgbn) as src:
        assert len(areas) == 2 and all(area.equals(box(*src.bounds)) for area in areas)


def test_scenes_trace_gives_scenes_added_before_data_areas_theirs(geoship_home, make_raster):
    data = np.zeros((1, 64, 96), np.uint16)
    data[:, 8:40, 16:48] = 5
    path = make_raster("old.tif", data, nodata=0)
    geoship("projects", "create", "farms")
    assert geoship("scenes", "add", str(path), "--project", "farms", "--bands", "red").exit_code == 0
    with Session(get_engine()) as session:  # as a scene added before `scenes add` traced areas
        scene = session.exec(select(Scene)).one()
        traced_when_added, scene.data_area = scene.data_area, None
        session.add(scene)
        session.commit()

    result = geoship("scenes", "trace", "--project", "farms")

    assert result.exit_code == 0, result.stderr
    with Session(get_engine()) as session:
        area = shape(session.exec(select(Scene)).one().data_area)
    assert area.equals(shape(traced_when_added))
    with rasterio.open(path) as src:
        assert area.contains(box(*src.xy(8, 16, offset="ul"), *src.xy(40, 48, offset="ul")))
        share = area.area / box(*src.bounds).area
    assert share < 0.5 and f"traced scene old (id 1): data in {share:.0%} of its bounds" in result.stdout
    again = geoship("scenes", "trace", "--project", "farms")
    assert again.exit_code == 0 and "every scene of yours in farms has its data area" in again.stdout
    assert "traced scene old" in geoship("scenes", "trace", "--project", "farms", "--again").stdout
    missing = geoship("scenes", "trace", "--project", "nope")
    assert missing.exit_code == 2 and "project 'nope' not found" in missing.stderr
