"""The artifact store: a local directory by default, an S3 bucket in production (here moto on loopback)."""

import hashlib

import pytest

from delivery.artifacts import LocalArtifactStore, artifact_store
from delivery.s3_artifacts import S3ArtifactStore
from models.settings import get_settings


@pytest.fixture
def s3_store(geoship_home, s3_server, monkeypatch):
    """GEOSHIP_ARTIFACTS_URL on a fresh bucket, with the machine's AWS credentials being the service user's."""
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("GEOSHIP_ARTIFACTS_URL", f"s3://{bucket}/renders")
    monkeypatch.setenv("GEOSHIP_ARTIFACTS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.service.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.service.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    get_settings.cache_clear()
    return bucket


def stage(store, export_id: int, size: int) -> tuple[bytes, str]:
    data = hashlib.shake_256(b"render").digest(size)
    path = store.staging_path(export_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data, store.publish(export_id, path, hashlib.sha256(data).hexdigest())


def test_the_default_store_is_a_directory_under_home(geoship_home):
    store = artifact_store()
    assert isinstance(store, LocalArtifactStore)
    data, uri = stage(store, 7, 3000)
    assert uri == str(geoship_home / "artifacts" / "export-7" / "export-7.tif")
    assert store.size(uri) == 3000 and b"".join(store.read(uri, 10, 19)) == data[10:20]
    with store.local_copy(uri) as path:
        assert path.read_bytes() == data


def test_an_s3_store_keeps_renders_in_the_bucket_for_other_machines(s3_store, s3_server, geoship_home):
    store = artifact_store()
    assert isinstance(store, S3ArtifactStore)
    data, uri = stage(store, 8, 2 * 1024**2 + 3)
    assert uri == f"s3://{s3_store}/renders/export-8/export-8.tif"
    assert not store.staging_path(8).exists()  # nothing of it stays on this machine's disk
    assert store.size(uri) == len(data)
    assert b"".join(store.read(uri, 1000, 1024**2 + 999)) == data[1000:1024**2 + 1000]
    with store.local_copy(uri) as path:
        assert path.read_bytes() == data
    assert not path.exists()
    assert store.size(f"s3://{s3_store}/renders/export-9/export-9.tif") is None
    head = s3_server.client().head_object(Bucket=s3_store, Key="renders/export-8/export-8.tif")
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_reused_render_is_copied_inside_the_store(s3_store, s3_server, geoship_home, monkeypatch):
    local = LocalArtifactStore(geoship_home / "local")
    data, uri = stage(local, 3, 5000)
    copied = local.copy_artifact(uri, 4)
    assert copied.endswith("export-4/export-4.tif") and local.size(copied) == 5000
    with local.local_copy(copied) as path:
        assert path.read_bytes() == data

    monkeypatch.setenv("GEOSHIP_S3_MULTIPART_THRESHOLD", str(5 * 1024**2))
    monkeypatch.setenv("GEOSHIP_S3_PART_SIZE", str(5 * 1024**2))
    get_settings.cache_clear()
    store = artifact_store()
    data, uri = stage(store, 8, 11 * 1024**2 + 5)  # over the threshold: copied in three parts, server side
    copied = store.copy_artifact(uri, 9)
    assert copied == f"s3://{s3_store}/renders/export-9/export-9.tif" and not store.staging_path(9).exists()
    with store.local_copy(copied) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    head = s3_server.client().head_object(Bucket=s3_store, Key="renders/export-9/export-9.tif")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart copy: the bytes never came through here


def test_what_a_dead_run_left_in_an_s3_store_is_removed_and_nothing_else(s3_store, s3_server, geoship_home):
    store = artifact_store()
    _, artifact = stage(store, 21, 1000)
    store.put_sidecar(21, "export-21.json", b"{}")
    client = s3_server.client()
    client.put_object(Bucket=s3_store, Key="renders/export-21/export-21.zip.1a2b3c4d.partial", Body=b"half")
    unfinished = client.create_multipart_upload(Bucket=s3_store, Key="renders/export-21/export-21.tif")["UploadId"]
    client.upload_part(Bucket=s3_store, Key="renders/export-21/export-21.tif", UploadId=unfinished, PartNumber=1,
                       Body=b"x" * 1000)
    client.put_object(Bucket=s3_store, Key="renders/export-210/export-210.tif.partial", Body=b"another export's")

    assert store.remove_unfinished(21) == 2
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=s3_store)["Contents"])
    assert keys == ["renders/export-21/export-21.json", "renders/export-21/export-21.tif",
                    "renders/export-210/export-210.tif.partial"]
    assert client.list_multipart_uploads(Bucket=s3_store).get("Uploads", []) == []
    assert store.size(artifact) == 1000
    assert store.remove_unfinished(21) == 0


def test_what_a_dead_run_left_in_a_local_store_is_removed_and_nothing_else(geoship_home):
    store = artifact_store()
    _, artifact = stage(store, 22, 1000)
    folder = store.staging_path(22).parent
    (folder / "export-22.zip.partial").write_bytes(b"half")
    (folder / "export-22.json").write_bytes(b"{}")
    assert store.remove_unfinished(22) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["export-22.json", "export-22.tif"]
    assert store.size(artifact) == 1000
