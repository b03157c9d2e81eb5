"""A sharded render packaged straight from the actors' blocks: locally into one file, or uploaded by the actors
into S3 (a real S3 API on loopback); the same bytes either way, every CRC and checksum right, the shards equal
to the unsharded render, and nothing left behind on failure."""

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

import numpy as np
import pytest
import rasterio
import shapely
from rio_cogeo.cogeo import cog_validate

from models.errors import OutputRefused
from ray_render.grid import plan_grid
from ray_render.product import render_product
from ray_render.render import RenderOptions, render
from ray_render.shards import shard_windows
from ray_render.upload import S3Output
from tests.ray_render.test_render import tree_of
from tests.ray_render.test_upload import GRID, OPTIONS, spill_dirs

MiB = 1024**2
CREATED = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def package(tree, grid, staged, windows, upload=None, options=OPTIONS):
    return render_product(tree, grid, staged, options, shard_windows=windows, upload=upload, created=CREATED)


def check_package(data: bytes, base: str, whole_path, shards: int) -> None:
    """The archive's CRCs, its items' checksums, its COGs' validity, and its VRT equal to the unsharded render."""
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        assert zipped.testzip() is None
        names = zipped.namelist()
        tifs = [n for n in names if n.endswith(".tif")]
        assert len(tifs) == shards and names[:shards] == tifs  # the COGs first, then the documents
        collection = json.loads(zipped.read(f"{base}/collection.json"))
        for link in (link for link in collection["links"] if link["rel"] == "item"):
            item = json.loads(zipped.read(f"{base}/{link['href'][2:]}"))
            member = zipped.read(f"{base}/{item['assets']['data']['href'][2:]}")
            assert item["assets"]["data"]["file:checksum"] == "1220" + hashlib.sha256(member).hexdigest()
            assert item["assets"]["data"]["file:size"] == len(member)
    with rasterio.MemoryFile(data, ext=".zip") as memory:
        for name in tifs:
            assert cog_validate(f"/vsizip/{memory.name}/{name}")[0]
        with rasterio.open(f"/vsizip/{memory.name}/{base}/{base}.vrt") as mosaic, rasterio.open(whole_path) as single:
            assert (mosaic.width, mosaic.height, mosaic.transform) == (single.width, single.height, single.transform)
            assert np.array_equal(mosaic.read(), single.read())


def test_a_package_is_written_locally_from_the_blocks(ray_cluster, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    tree, options = tree_of(scene), RenderOptions(tile_size=128)
    whole = render(tree, grid, tmp_path / "whole.tif", options)
    staged = tmp_path / "export-5" / "export-5.tif"
    rendered = package(tree, grid, staged, shard_windows(grid, 128), options=options)

    archive = staged.with_suffix(".zip")
    data = archive.read_bytes()
    assert rendered.kind == "package" and rendered.uri == str(archive)
    assert rendered.bytes == len(data) and rendered.sha256 == hashlib.sha256(data).hexdigest()
    assert rendered.tiles == whole.tiles and len(rendered.shards) == 9
    check_package(data, "export-5", whole.path, 9)
    assert sorted(p.name for p in archive.parent.iterdir()) == ["export-5.zip"]  # no shard file, no .partial


@pytest.mark.parametrize("copied", [True, False], ids=["copied-in-the-store", "small"])
def test_the_actors_upload_a_package_equal_to_the_local_one(ray_cluster, platform_writer, noise_tree, scene, tmp_path,
                                                            copied):
    # 7.3 MiB of noise: its shards are copied into the final object as a part; a small package's bytes are not.
    tree, grid, options, side = (noise_tree, GRID, OPTIONS, 1024) if copied else (
        tree_of(scene), plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10), RenderOptions(tile_size=128), 128)
    local = package(tree, grid, tmp_path / "local" / "export-6.tif", shard_windows(grid, side), options=options)
    bucket = platform_writer.new_bucket()
    output = S3Output(bucket, "exports/export-6.zip", platform_writer.url, part_size=5 * MiB)
    before = spill_dirs()
    uploaded = package(tree, grid, tmp_path / "staged" / "export-6.tif", shard_windows(grid, side), output, options)

    client = platform_writer.client()
    stored = client.get_object(Bucket=bucket, Key="exports/export-6.zip")["Body"].read()
    assert stored == (tmp_path / "local" / "export-6.zip").read_bytes()  # the same bytes as the local writer's
    assert (len(stored) > 5 * MiB) == copied
    assert uploaded.uri == output.uri and uploaded.sha256 == local.sha256 == hashlib.sha256(stored).hexdigest()
    assert uploaded.shards == local.shards and uploaded.stac == local.stac
    head = client.head_object(Bucket=bucket, Key="exports/export-6.zip")
    assert head["ContentType"] == "application/zip" and head["ETag"].strip('"').endswith("-2" if copied else "-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["exports/export-6.zip"]  # the temporary object is gone
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert not [p for p in (tmp_path / "staged").rglob("*") if p.is_file()]  # nothing local
    assert spill_dirs() == before


def test_a_refused_store_leaves_no_package_anywhere(ray_cluster, platform_writer, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    output = S3Output("no-such-bucket-here", "export-7.zip", platform_writer.url)
    before = spill_dirs()
    with pytest.raises(OutputRefused, match="NoSuchBucket"):
        package(tree_of(scene), grid, tmp_path / "export-7.tif", shard_windows(grid, 128), output,
                RenderOptions(tile_size=128))
    assert spill_dirs() == before and not list(tmp_path.rglob("export-7*"))


def test_the_stac_geometry_is_where_the_scene_holds_data_not_its_footprint(ray_cluster, make_raster, tmp_path):
    """A tilted swath with nodata around it: the item's geometry (one COG, and each shard of a package) holds every
    valid pixel and leaves out the nodata corners, which the scene's footprint holds."""
    from pyproj import Transformer
    from shapely.geometry import shape

    from tests.ray_render.test_data_area import swath
    from tests.ray_render.test_mosaic import source_of
    from tests.support.stac import validate_stac

    valid = swath(1200, 1200, turn_degrees=25, fill=0.6)
    pixels = (np.arange(3 * 1200 * 1200).reshape(3, 1200, 1200) % 1000 + 1) * valid
    path = make_raster("swath.tif", pixels.astype(np.uint16), origin=(500000, 4012000), nodata=0)
    scene = source_of(path, "swath", bands=("red", "green", "blue"))
    grid = plan_grid("EPSG:32618", (500000, 4000000, 512000, 4012000), 10)
    to_lonlat = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    corner, centre = to_lonlat.transform(500050, 4011950), to_lonlat.transform(506000, 4006000)
    with rasterio.open(path) as src:
        rows, cols = np.nonzero(valid)
        lon, lat = to_lonlat.transform(*src.xy(rows, cols))

    single = render_product(tree_of(scene), grid, tmp_path / "export-1.tif", OPTIONS, created=CREATED)
    packaged = package(tree_of(scene), grid, tmp_path / "export-2.tif", shard_windows(grid, 512))

    with zipfile.ZipFile(packaged.uri) as zipped:
        shard_items = [json.loads(zipped.read(name)) for name in zipped.namelist() if name.endswith(".stac.json")]
    assert len(shard_items) > 1
    for item in [single.stac, *shard_items]:
        validate_stac(item)
    geometry = shape(single.stac["geometry"])
    assert shapely.intersects_xy(geometry, lon, lat).all()  # every valid pixel's centre
    assert geometry.contains(shapely.Point(centre)) and not geometry.contains(shapely.Point(corner))
    # The shards' items cover the same data between them (a shard no data area reaches keeps its footprint's).
    shards = shapely.union_all([shape(item["geometry"]) for item in shard_items])
    assert geometry.difference(shards).area < 1e-3 * geometry.area
    assert shapely.intersects_xy(shards, lon, lat).all()
