"""Scenes in object storage and on HTTP servers: inspected and rendered from a real S3 API and a Range-capable
HTTP server on loopback, with the platform's credentials from the standard AWS environment."""

from dataclasses import asdict

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from models.catalogue import scene_source
from models.errors import SceneReadError, SceneUnavailable
from models.tables import Scene
from models.tooltree import Identity, Output, ProjectSource, parse_tool_tree
from ray_render.grid import plan_grid
from ray_render.inspect import inspect_scene
from ray_render.remote import gdal_path, scene_environment
from ray_render.render import RenderOptions, render
from tests.support.range_server import RangeServer

GRID = plan_grid("EPSG:3857", (-8348900, 4320300, -8346000, 4323500), 10.0)


@pytest.fixture
def cog_scene(make_raster, tmp_path):
    """A 3-band uint16 COG (300 x 300 px, UTM 18N) in its own directory, and its pixels."""
    rng = np.random.default_rng(11)
    data = (np.cumsum(np.cumsum(rng.integers(0, 3, (3, 300, 300)), axis=1), axis=2) % 60000 + 1).astype(np.uint16)
    flat = make_raster("flat.tif", data, origin=(500000, 4003000), nodata=0, bands=["red", "green", "blue"])
    served = tmp_path / "served"
    served.mkdir()
    rasterio.shutil.copy(flat, served / "scene.tif", driver="COG", blocksize=128)
    return served / "scene.tif"


def source_for(uri: str):
    info = inspect_scene(path=uri)
    return scene_source(Scene(name="remote", owner_id=0, **asdict(info)))


def rgb_tree(source, bands=("red", "green", "blue")):
    node = Identity(input=ProjectSource(scenes=[source], bands=list(bands)))
    return parse_tool_tree(Output(input=node, dtype="uint16", nodata=0).model_dump(mode="json"))


@pytest.fixture
def platform_reader(s3_server, monkeypatch):
    """The standard AWS environment of a platform allowed to read the store."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.reader.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.reader.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    return s3_server


def render_pixels(tree, path):
    render(tree, GRID, path, RenderOptions(tile_size=128))
    with rasterio.open(path) as out:
        return out.read()


def test_gdal_paths_and_settings_come_from_the_standard_environment():
    assert gdal_path("s3://bucket/a/b.tif") == "/vsis3/bucket/a/b.tif"
    assert gdal_path("https://host/x.tif") == "/vsicurl/https://host/x.tif"
    assert gdal_path("/data/x.tif") == "/data/x.tif"
    settings = scene_environment({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL": "https://other",
                                  "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIA", "GDAL_HTTP_TIMEOUT": "5"})
    assert settings["AWS_S3_ENDPOINT"] == "127.0.0.1:9000" and settings["AWS_HTTPS"] == "NO"  # the S3 one wins
    assert settings["AWS_VIRTUAL_HOSTING"] == "FALSE" and settings["AWS_REGION"] == "eu-west-1"
    assert settings["GDAL_HTTP_TIMEOUT"] == "5"  # an operator's own setting wins
    assert "429" in settings["GDAL_HTTP_RETRY_CODES"] and "503" in settings["GDAL_HTTP_RETRY_CODES"]


def test_a_scene_in_s3_is_inspected_and_rendered_like_the_local_file(ray_cluster, platform_reader, cog_scene, tmp_path):
    bucket = platform_reader.new_bucket()
    platform_reader.client().upload_file(str(cog_scene), bucket, "imagery/scene.tif")
    uri = f"s3://{bucket}/imagery/scene.tif"
    remote, local = source_for(uri), source_for(str(cog_scene))
    assert remote.bands[0].uri == uri and remote.crs == local.crs and remote.bounds == local.bounds
    pixels = render_pixels(rgb_tree(remote), tmp_path / "from-s3.tif")
    assert (pixels > 0).mean() > 0.2
    assert np.array_equal(pixels, render_pixels(rgb_tree(local), tmp_path / "from-disk.tif"))
    # two of its three bands: read through a band subset of the object (vrt:///vsis3/...)
    assert np.array_equal(render_pixels(rgb_tree(remote, ("blue", "red")), tmp_path / "two-from-s3.tif"), pixels[[2, 0]])


def test_a_missing_or_forbidden_s3_scene_ends_the_render_naming_it(ray_cluster, platform_reader, cog_scene, tmp_path,
                                                                    monkeypatch):
    bucket = platform_reader.new_bucket()
    platform_reader.client().upload_file(str(cog_scene), bucket, "scene.tif")
    source = source_for(f"s3://{bucket}/scene.tif")
    gone = source.model_copy(update={"bands": [b.model_copy(update={"uri": f"s3://{bucket}/gone.tif"}) for b in source.bands]})
    with pytest.raises(SceneUnavailable) as missing:
        render(rgb_tree(gone), GRID, tmp_path / "out" / "a.tif", RenderOptions(tile_size=128))
    assert str(missing.value).startswith("scene remote: ") and f"s3://{bucket}/gone.tif" in str(missing.value)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(SceneUnavailable) as forbidden:
        render(rgb_tree(source), GRID, tmp_path / "out" / "b.tif", RenderOptions(tile_size=128))
    assert f"s3://{bucket}/scene.tif" in str(forbidden.value) and "not-the-secret" not in str(forbidden.value)
    assert not list((tmp_path / "out").iterdir())  # nothing half-written


def test_a_cog_on_an_http_server_is_read_in_ranges(ray_cluster, cog_scene, tmp_path):
    server = RangeServer(cog_scene.parent).start()
    try:
        remote = source_for(f"{server.url}/scene.tif")
        pixels = render_pixels(rgb_tree(remote), tmp_path / "from-http.tif")
        assert np.array_equal(pixels, render_pixels(rgb_tree(source_for(str(cog_scene))), tmp_path / "from-disk.tif"))
        assert np.array_equal(render_pixels(rgb_tree(remote, ("green",)), tmp_path / "one-from-http.tif"), pixels[[1]])
        ranged = [r for method, path, r in server.requests if method == "GET" and path == "/scene.tif"]
        assert ranged and all(r and r.startswith("bytes=") for r in ranged)  # never the whole file at once
    finally:
        server.stop()


def test_http_failures_are_retried_refused_or_timed_out_naming_the_scene(ray_cluster, cog_scene, tmp_path, monkeypatch):
    server = RangeServer(cog_scene.parent).start()
    try:
        remote = source_for(f"{server.url}/scene.tif")
        server.fail["/scene.tif"] = (503, 2)  # a busy server: GDAL retries with backoff, the render succeeds
        render_pixels(rgb_tree(remote), tmp_path / "busy.tif")
        assert server.fail["/scene.tif"] == (503, 0)

        server.fail["/scene.tif"] = (404, None)
        with pytest.raises(SceneUnavailable) as missing:
            render(rgb_tree(remote), GRID, tmp_path / "out" / "gone.tif", RenderOptions(tile_size=128))
        assert str(missing.value).startswith("scene remote: ") and f"{server.url}/scene.tif" in str(missing.value)

        del server.fail["/scene.tif"]
        server.stall.add("/scene.tif")
        monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
        monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "1")
        with pytest.raises(SceneReadError) as stalled:
            render(rgb_tree(remote), GRID, tmp_path / "out" / "stalled.tif", RenderOptions(tile_size=128))
        assert str(stalled.value).startswith("scene remote: cannot open") and "/scene.tif" in str(stalled.value)
        assert not list((tmp_path / "out").iterdir())
    finally:
        server.stop()
