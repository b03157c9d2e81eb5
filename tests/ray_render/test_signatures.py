"""Source file signatures, which decide whether an earlier render may be reused: they change when the file does,
and are None when the file cannot tell (gone, or an HTTP server without validators)."""

import os

import ray_render.signatures
from ray_render.signatures import file_signature
from tests.ray_render.test_remote_scenes import platform_reader  # noqa: F401 (fixture)
from tests.support.range_server import RangeServer


def test_a_local_file_is_known_by_its_size_and_modification_time(tmp_path):
    path = tmp_path / "scene.tif"
    path.write_bytes(b"x" * 10)
    first = file_signature(str(path))
    assert first == file_signature(str(path))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert file_signature(str(path)) not in (None, first)
    assert file_signature(str(tmp_path / "gone.tif")) is None


def test_an_object_is_known_by_its_etag(platform_reader, s3_server):  # noqa: F811
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="a/scene.tif", Body=b"one")
    first = file_signature(f"s3://{bucket}/a/scene.tif")
    assert first is not None and "size=3" in first
    client.put_object(Bucket=bucket, Key="a/scene.tif", Body=b"two")
    assert file_signature(f"s3://{bucket}/a/scene.tif") not in (None, first)
    assert file_signature(f"s3://{bucket}/a/missing.tif") is None


def test_an_http_file_is_known_by_its_validators_or_not_at_all(tmp_path):
    (tmp_path / "scene.tif").write_bytes(b"pixels")
    server = RangeServer(tmp_path).start()
    try:
        url = f"{server.url}/scene.tif"
        assert file_signature(url) is None  # neither ETag nor Last-Modified: it cannot say whether it changed
        server.validators = True
        first = file_signature(url)
        assert first is not None and first.endswith("size=6")
        (tmp_path / "scene.tif").write_bytes(b"pixels, changed")
        assert file_signature(url) not in (None, first)
        assert file_signature(f"{server.url}/missing.tif") is None
    finally:
        server.stop()


def test_many_files_are_asked_together_and_each_answers_for_itself(platform_reader, s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    keys = [f"scenes/{n}.tif" for n in range(40)]
    for n, key in enumerate(keys):
        client.put_object(Bucket=bucket, Key=key, Body=b"x" * (n + 1))
    local = tmp_path / "local.tif"
    local.write_bytes(b"local")
    uris = [f"s3://{bucket}/{key}" for key in keys] + [str(local), f"s3://{bucket}/missing.tif", f"s3://{bucket}/{keys[0]}"]
    found = ray_render.signatures.file_signatures(uris)
    assert list(found) == list(dict.fromkeys(uris))  # each file once, in the order asked
    assert all(found[f"s3://{bucket}/{key}"].endswith(f";size={n + 1}") for n, key in enumerate(keys))
    assert found[str(local)] == file_signature(str(local)) and found[f"s3://{bucket}/missing.tif"] is None
