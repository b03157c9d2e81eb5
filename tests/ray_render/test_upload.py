"""COGs uploaded by the tile actors as the parts of one S3 multipart upload, on a real S3 API on loopback: the
object equals the local file byte for byte, a refused store ends the render cleanly, and actors killed before or
during the upload lose none of their blocks."""

import hashlib
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

import ray_render.cog_render as cog_render
from models.errors import OutputRefused
from models.tooltree import Identity, Output, ProjectSource, parse_tool_tree
from ray_render.blocks import Layout, StoredBlock
from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, render
from ray_render.upload import MIN_PART, S3Output, Segment, part_size_for, plan_parts
from tests.ray_render.test_mosaic import source_of

MiB = 1024**2
# 1,600 x 1,600 px of noise in three bands: about 7.3 MiB that deflate cannot shrink, so two parts.
SIZE = 1600
GRID = plan_grid("EPSG:32618", (500000, 4000000 - SIZE * 10, 500000 + SIZE * 10, 4000000), 10.0)
OPTIONS = RenderOptions(tile_size=512)


def noise_scene(make_raster) -> Path:
    """A 3-band uint8 GeoTIFF of noise covering GRID."""
    rng = np.random.default_rng(5)
    data = rng.integers(1, 256, (3, SIZE, SIZE), dtype=np.uint8)
    return make_raster("noise.tif", data, origin=(500000, 4000000), nodata=0, bands=["red", "green", "blue"])


def rgb_of(uri: str):
    """The tool tree exporting the scene at `uri` (a path or s3://) as it is."""
    source = source_of(uri, "noise", bands=("red", "green", "blue"))
    node = Identity(input=ProjectSource(scenes=[source], bands=["red", "green", "blue"]))
    return parse_tool_tree(Output(input=node, dtype="uint8", nodata=0).model_dump(mode="json"))


def spill_dirs() -> set[str]:
    root = Path(tempfile.gettempdir()) / "geoship-spills"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_parts_cut_the_file_in_order_at_the_part_size():
    blocks = [StoredBlock("a.bin", 0, 300, "n1"), StoredBlock("b.bin", 40, 500, "n2"), StoredBlock("a.bin", 300, 200, "n1")]
    planned = Layout(b"H" * 120, blocks)
    parts = plan_parts(planned.pieces(), 400)
    assert [sum(s.length for s in part) for part in parts] == [400, 400, 320]
    assert parts[0] == [Segment(None, 0, 120), Segment("a.bin", 0, 280, "n1")]
    assert parts[1] == [Segment("a.bin", 280, 20, "n1"), Segment("b.bin", 40, 380, "n2")]  # a block straddles parts
    assert parts[2] == [Segment("b.bin", 420, 120, "n2"), Segment("a.bin", 300, 200, "n1")]
    assert part_size_for(10, 1) == MIN_PART  # S3's floor
    assert part_size_for(200_000 * MiB, 5 * MiB) == 20 * MiB  # at most 10,000 parts


def test_the_actors_upload_the_same_bytes_the_local_file_holds(ray_cluster, platform_writer, noise_tree, tmp_path):
    local = render(noise_tree, GRID, tmp_path / "local.tif", OPTIONS)
    bucket = platform_writer.new_bucket()
    output = S3Output(bucket, "exports/export-1.tif", platform_writer.url, part_size=5 * MiB)
    before = spill_dirs()
    uploaded = render(noise_tree, GRID, tmp_path / "staged" / "export-1.tif", OPTIONS, upload=output)

    data = (tmp_path / "local.tif").read_bytes()
    assert local.bytes > 5 * MiB  # so the upload had more than one part
    client = platform_writer.client()
    stored = client.get_object(Bucket=bucket, Key="exports/export-1.tif")["Body"].read()
    assert stored == data
    assert uploaded.path == f"s3://{bucket}/exports/export-1.tif"
    assert uploaded.bytes == len(data) and uploaded.sha256 == hashlib.sha256(data).hexdigest() == local.sha256
    head = client.head_object(Bucket=bucket, Key="exports/export-1.tif")
    assert head["ETag"].strip('"').endswith(f"-{-(-len(data) // (5 * MiB))}")  # a multipart object
    assert head["ContentType"].startswith("image/tiff")
    assert not (tmp_path / "staged" / "export-1.tif").exists()  # nothing local under the final name
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert spill_dirs() == before  # every actor removed its spill file


def test_a_refused_store_ends_the_render_with_nothing_under_the_key(ray_cluster, platform_writer, noise_tree, tmp_path):
    output = S3Output("no-such-bucket-here", "export-2.tif", platform_writer.url)
    before = spill_dirs()
    with pytest.raises(OutputRefused) as refused:
        render(noise_tree, GRID, tmp_path / "export-2.tif", OPTIONS, upload=output)
    assert "NoSuchBucket" in str(refused.value)
    assert platform_writer.writer.secret_access_key not in str(refused.value)
    assert spill_dirs() == before and not list(tmp_path.glob("export-2*"))


def test_an_actor_killed_before_the_upload_leaves_its_blocks_to_the_others(ray_cluster, platform_writer, noise_tree,
                                                                           tmp_path, monkeypatch):
    import ray

    real_upload = cog_render.upload_cog
    killed = []

    def kill_one_then_upload(pool, planned, output):
        killed.append(pool.actors[0])
        ray.kill(pool.actors[0], no_restart=True)  # its spill file stays on this node's disk
        return real_upload(pool, planned, output)

    monkeypatch.setattr(cog_render, "upload_cog", kill_one_then_upload)
    bucket = platform_writer.new_bucket()
    output = S3Output(bucket, "export-3.tif", platform_writer.url, part_size=5 * MiB)
    uploaded = render(noise_tree, GRID, tmp_path / "export-3.tif", OPTIONS, upload=output)
    local = render(noise_tree, GRID, tmp_path / "local.tif", OPTIONS)
    assert killed and uploaded.sha256 == local.sha256
    stored = platform_writer.client().get_object(Bucket=bucket, Key="export-3.tif")["Body"].read()
    assert stored == (tmp_path / "local.tif").read_bytes()
    assert not platform_writer.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_actors_killed_mid_upload_have_their_parts_sent_again_by_new_ones(ray_cluster, platform_writer, noise_tree,
                                                                         tmp_path, monkeypatch):
    import ray

    from tests.support.flaky_proxy import FlakyProxy

    pools = []
    real_upload = cog_render.upload_cog

    def seen_upload(pool, planned, output):
        pools.append(pool)
        return real_upload(pool, planned, output)

    monkeypatch.setattr(cog_render, "upload_cog", seen_upload)
    bucket = platform_writer.new_bucket()
    # Part 2's first PUT is held open by the proxy; meanwhile every actor of the render is killed, the one sending
    # it among them. Their spill files stay on this node's disk, so new actors send the parts again.
    with FlakyProxy(platform_writer.url, failures=1, hold=True,
                    should_fail=lambda method, path: method == "PUT" and "partNumber=2" in path) as proxy:
        killed = []

        def kill_the_actors_mid_part():
            if proxy.holding.wait(120):
                killed.extend(pools[0].actors)
                for actor in killed:
                    ray.kill(actor, no_restart=True)
            proxy.release.set()

        killer = threading.Thread(target=kill_the_actors_mid_part)
        killer.start()
        output = S3Output(bucket, "export-5.tif", proxy.url, part_size=5 * MiB)
        try:
            uploaded = render(noise_tree, GRID, tmp_path / "export-5.tif", OPTIONS, upload=output)
        finally:
            proxy.release.set()
            killer.join()
    assert killed and proxy.failed == [proxy.failed[0]] and "partNumber=2" in proxy.failed[0]
    assert not set(killed) & set(pools[0].actors)  # the parts went up through new actors
    local = render(noise_tree, GRID, tmp_path / "local.tif", OPTIONS)
    assert uploaded.sha256 == local.sha256
    client = platform_writer.client()
    assert client.get_object(Bucket=bucket, Key="export-5.tif")["Body"].read() == (tmp_path / "local.tif").read_bytes()
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_part_refused_mid_upload_aborts_the_upload(ray_cluster, platform_writer, noise_tree, tmp_path):
    from tests.support.flaky_proxy import FlakyProxy

    bucket = platform_writer.new_bucket()
    with FlakyProxy(platform_writer.url, failures=1, refuse=True,
                    should_fail=lambda method, path: method == "PUT" and "partNumber=2" in path) as proxy:
        output = S3Output(bucket, "export-4.tif", proxy.url, part_size=5 * MiB)
        with pytest.raises(OutputRefused, match="part 2 of s3://.*AccessDenied"):
            render(noise_tree, GRID, tmp_path / "export-4.tif", OPTIONS, upload=output)
    assert proxy.failed and any("partNumber=1" in sent for sent in proxy.forwarded)  # part 1 went up
    client = platform_writer.client()
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted: its parts are gone
    assert not client.list_objects_v2(Bucket=bucket).get("Contents")  # nothing under the key


def test_range_digests_follow_ranges_across_any_chunking():
    import random

    from ray_render.upload import RangeDigests

    rng = random.Random(9)
    data = rng.randbytes(100_000)
    ranges = [(10, 0), (10, 5000), (7000, 1), (7001, 40_000), (99_000, 1000)]
    for _ in range(20):
        found, at = RangeDigests(ranges), 0
        while at < len(data):
            step = rng.randint(1, 9000)
            found.feed(data[at:at + step])
            at += step
        assert found.digests() == [hashlib.sha256(data[o:o + n]).hexdigest() for o, n in ranges]
        assert found.whole.hexdigest() == hashlib.sha256(data).hexdigest() and found.position == len(data)
    short = RangeDigests([(0, 10), (200, 10)])
    short.feed(data[:100])
    with pytest.raises(Exception, match="before the range at 200"):
        short.digests()
