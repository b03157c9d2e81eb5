"""Delivery inside the export flow: several targets each with their own outcome, retry without
re-rendering, and an S3 artifact store; against moto's S3 and the fake Dropbox on loopback."""

import hashlib
import io
import json
import zipfile
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlmodel import select

from api.app import create_app
from delivery.dropbox_target import add_dropbox_credential
from delivery.s3_target import add_s3_credential
from flows.export_flow import export_flow, retry_delivery_flow
from flows.services.retry import reopen_for_delivery
from flows.services.status import claim_export
from flows.services.submission import create_export
from flows.services.views import export_view
from models.errors import Conflict, InvalidRequest
from models.schemas import DropboxSecret, ExportRequest, S3CredentialConfig, S3Secret, TargetRequest
from models.settings import get_settings
from models.status import ExportStatus, TargetStatus
from models.tables import Download, Export
from tests.conftest import SMALL_AOI

pytestmark = pytest.mark.usefixtures("ray_cluster", "prefect_server")


@pytest.fixture
def credentials(session, owner, s3_server, dropbox):
    """An S3 credential (moto writer) with a fresh bucket, and a Dropbox credential on a fresh account."""
    bucket = s3_server.new_bucket()
    s3 = add_s3_credential(session, owner=owner, label="s3", bucket=bucket, config=S3CredentialConfig(endpoint_url=s3_server.url),
                           secret=S3Secret(access_key_id=s3_server.writer.access_key_id,
                                           secret_access_key=s3_server.writer.secret_access_key))
    box = add_dropbox_credential(session, owner=owner, label="box", secret=DropboxSecret(access_token=dropbox.issue_token()))
    session.commit()
    return {"bucket": bucket, "s3": s3.id, "dropbox": box.id}


def three_targets(credentials) -> list[TargetRequest]:
    return [
        TargetRequest(kind="http"),
        TargetRequest(kind="s3", config={"bucket": credentials["bucket"], "prefix": "geoship"}, credential_id=credentials["s3"]),
        TargetRequest(kind="dropbox", config={"folder": "/exports"}, credential_id=credentials["dropbox"]),
    ]


def submit(session, owner, targets) -> int:
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", aoi=SMALL_AOI, targets=targets))
    session.commit()
    assert claim_export(export.id)
    return export.id


def test_one_export_is_delivered_to_a_link_a_bucket_and_a_dropbox(session, owner, project, credentials, s3_server, dropbox):
    export_id = submit(session, owner, three_targets(credentials))
    export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.success, view.error
    data = Path(view.artifact).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    http, s3, box = view.targets
    assert [t.status for t in view.targets] == [TargetStatus.success] * 3
    assert TestClient(create_app()).get(urlsplit(http.result["url"]).path).content == data
    key = f"geoship/export-{export_id}.tif"
    assert s3.result["url"] == f"s3://{credentials['bucket']}/{key}" and s3.result["sha256"] == sha256
    assert s3_server.client().get_object(Bucket=credentials["bucket"], Key=key)["Body"].read() == data
    assert box.result["path"] == f"/exports/export-{export_id}.tif"
    assert dropbox.account.files[box.result["path"].lower()] == data

    # Beside the file, every target holds its STAC item and the manifest of both, each as stored.
    names = [f"export-{export_id}.stac.json", f"export-{export_id}.png", f"export-{export_id}.manifest.json"]
    api = TestClient(create_app())
    served = {name: api.get(urlsplit(url).path) for name, url in zip(names, http.result["sidecar_urls"], strict=True)}
    assert [served[name].headers["content-type"] for name in names] == [
        "application/geo+json", "image/png", "application/json"]
    stac, quicklook, manifest = (served[name].content for name in names)
    assert s3.result["sidecars"] == [f"geoship/{name}" for name in names]
    assert [s3_server.client().get_object(Bucket=credentials["bucket"], Key=f"geoship/{name}")["Body"].read()
            for name in names] == [stac, quicklook, manifest]
    assert [dropbox.account.files[f"/exports/{name}"] for name in names] == [stac, quicklook, manifest]
    assert json.loads(manifest) == {"export_id": export_id, "files": [
        {"name": f"export-{export_id}.tif", "bytes": len(data), "sha256": sha256},
        {"name": names[0], "bytes": len(stac), "sha256": hashlib.sha256(stac).hexdigest()},
        {"name": names[1], "bytes": len(quicklook), "sha256": hashlib.sha256(quicklook).hexdigest()}]}
    assert json.loads(stac)["assets"]["thumbnail"]["href"] == f"./{names[1]}" and quicklook.startswith(b"\x89PNG")
    assert json.loads(stac)["assets"]["data"]["file:checksum"] == "1220" + sha256
    # Reading the sidecars is not downloading the export: the link's one metered request is the file's.
    assert len(session.exec(select(Download)).all()) == 1

    # The run page: the quality summary, a link per target, the targets' table, the quicklook the link serves.
    with get_client(sync_client=True) as prefect:  # this run's: the session's server holds other tests' export 1
        run_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(view.flow_run_id)]))
        artifacts = {a.key: a for a in prefect.read_artifacts(artifact_filter=run_filter) if a.key}
    assert {f"export-{export_id}-{k}" for k in ("quality", "targets", "target-0", "target-1", "target-2",
                                                   "quicklook")} <= set(artifacts)
    assert "inside the area of interest" in artifacts[f"export-{export_id}-quality"].data
    table = json.loads(artifacts[f"export-{export_id}-targets"].data)
    assert [(row["kind"], row["status"], row["sha256"]) for row in table] == [
        ("http", "success", sha256), ("s3", "success", sha256), ("dropbox", "success", sha256)]
    assert artifacts[f"export-{export_id}-target-1"].data == f"[s3: {s3.result['url']}]({s3.result['url']})"
    assert artifacts[f"export-{export_id}-quicklook"].data == http.result["sidecar_urls"][1]


def test_a_failed_target_fails_the_export_and_delivery_is_retried_without_rendering(
        session, owner, project, credentials, dropbox, s3_server):
    export_id = submit(session, owner, three_targets(credentials))
    dropbox.account.other_usage = dropbox.account.allocated  # the Dropbox fills up after the request
    with pytest.raises(Exception, match="delivery failed for target 2"):
        export_flow(export_id)
    session.expire_all()
    export = session.get(Export, export_id)
    view = export_view(session, export)
    assert view.status == ExportStatus.error
    assert "target 2 (dropbox)" in view.error and "too little free space" in view.error
    assert [t.status for t in view.targets] == [TargetStatus.success, TargetStatus.success, TargetStatus.error]
    rendered, mtime = export.rendered, Path(export.artifact).stat().st_mtime_ns

    dropbox.account.other_usage = 0  # the user makes room
    target_ids = reopen_for_delivery(session, owner=owner, export_id=export_id)
    assert target_ids == [view.targets[2].id]
    retry_delivery_flow(export_id, target_ids)
    session.expire_all()
    export = session.get(Export, export_id)
    view = export_view(session, export)
    assert view.status == ExportStatus.success, view.error
    assert [t.status for t in view.targets] == [TargetStatus.success] * 3
    assert export.rendered == rendered and Path(export.artifact).stat().st_mtime_ns == mtime  # not rendered again
    assert dropbox.account.files[view.targets[2].result["path"].lower()] == Path(export.artifact).read_bytes()

    with pytest.raises(Conflict, match="already delivered; pick one with --target N"):
        reopen_for_delivery(session, owner=owner, export_id=export_id)
    assert reopen_for_delivery(session, owner=owner, export_id=export_id, position=1) == [view.targets[1].id]


def test_a_dropbox_without_room_for_the_estimate_is_refused_at_request_time(session, owner, project, credentials, dropbox):
    dropbox.account.allocated, dropbox.account.other_usage = 1_000_000, 999_000
    with pytest.raises(InvalidRequest, match=r"targets.2.credential_id: the Dropbox has too little free space .* "
                                             r"999,000 of 1,000,000 bytes used, 1,000 free, [\d,]+ needed"):
        submit(session, owner, three_targets(credentials))
    assert session.query(Export).count() == 0


def s3_artifact_store(s3_server, monkeypatch) -> str:
    """A fresh bucket as the artifact store (prefix artifacts/), the service user's keys in the AWS environment."""
    bucket = s3_server.new_bucket()
    for key, value in {"GEOSHIP_ARTIFACTS_URL": f"s3://{bucket}/artifacts", "GEOSHIP_ARTIFACTS_ENDPOINT_URL": s3_server.url,
                       "AWS_ACCESS_KEY_ID": s3_server.service.access_key_id,
                       "AWS_SECRET_ACCESS_KEY": s3_server.service.secret_access_key, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return bucket


def test_with_an_s3_artifact_store_renders_live_in_the_bucket(session, owner, project, s3_server, monkeypatch):
    bucket = s3_artifact_store(s3_server, monkeypatch)
    export_id = submit(session, owner, [TargetRequest(kind="http")])
    export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.success, view.error
    assert view.artifact == f"s3://{bucket}/artifacts/export-{export_id}/export-{export_id}.tif"
    data = s3_server.client().get_object(Bucket=bucket, Key=f"artifacts/export-{export_id}/export-{export_id}.tif")["Body"].read()
    assert hashlib.sha256(data).hexdigest() == view.targets[0].result["sha256"]
    stac = s3_server.client().get_object(Bucket=bucket, Key=f"artifacts/export-{export_id}/export-{export_id}.stac.json")
    assert f'"file:checksum": "1220{view.targets[0].result["sha256"]}"' in stac["Body"].read().decode()
    part = TestClient(create_app()).get(urlsplit(view.targets[0].result["url"]).path, headers={"Range": "bytes=100-4195"})
    assert part.status_code == 206 and part.content == data[100:4196]
    # The tile actors uploaded it as a multipart upload (a publish from this machine's disk would have been one
    # PUT, its ETag a plain MD5), and nothing of it stays here.
    head = s3_server.client().head_object(Bucket=bucket, Key=f"artifacts/export-{export_id}/export-{export_id}.tif")
    assert head["ETag"].strip('"').endswith("-1")
    assert not (Path(get_settings().home) / "staging" / f"export-{export_id}").exists()


def test_with_an_s3_artifact_store_a_sharded_export_is_uploaded_by_the_actors_as_one_zip(session, owner, project,
                                                                                          s3_server, monkeypatch):
    bucket = s3_artifact_store(s3_server, monkeypatch)
    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "128")  # blocks of 128 px: the tile actors write the COGs themselves
    monkeypatch.setenv("GEOSHIP_SHARD_MAX_BYTES", str(256 * 256 * 3 * 2))  # 256 px shards of 3 uint16 bands
    get_settings.cache_clear()
    request = ExportRequest(project="alps", aoi=SMALL_AOI, resolution=40, targets=[TargetRequest(kind="http")])
    export_id = create_export(session, owner=owner, request=request).id  # about 300 x 300 px: 2 x 2 shards
    session.commit()
    assert claim_export(export_id)
    export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.success, view.error
    key = f"artifacts/export-{export_id}/export-{export_id}.zip"
    assert view.artifact == f"s3://{bucket}/{key}"
    client = s3_server.client()
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == view.targets[0].result["sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        assert zipped.testzip() is None  # every member's CRC, written before its bytes existed
        assert len([n for n in zipped.namelist() if n.endswith(".tif")]) == 4
    # Written by a multipart upload (a publish from this machine would have been one PUT), with no temporary
    # object, upload or local file left behind.
    assert client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-1")
    names = sorted(o["Key"].rsplit("/", 1)[1] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert names == [f"export-{export_id}.{ext}" for ext in ("manifest.json", "png", "stac.json", "zip")]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert not (Path(get_settings().home) / "staging" / f"export-{export_id}").exists()
    download = TestClient(create_app()).get(urlsplit(view.targets[0].result["url"]).path)
    assert download.status_code == 200 and download.content == data


def test_an_export_end_to_end_into_seaweedfs(session, owner, project, seaweedfs):
    from tests.support.seaweedfs import ACCESS_KEY, ENDPOINT, SECRET_KEY

    seaweedfs.create_bucket(Bucket="geoship-flow")
    credential = add_s3_credential(session, owner=owner, label="weed", bucket="geoship-flow",
                                   config=S3CredentialConfig(endpoint_url=ENDPOINT),
                                   secret=S3Secret(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY))
    session.commit()
    export_id = submit(session, owner, [TargetRequest(kind="s3", config={"bucket": "geoship-flow", "prefix": "maps"},
                                                      credential_id=credential.id)])
    export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.success, view.error
    body = seaweedfs.get_object(Bucket="geoship-flow", Key=f"maps/export-{export_id}.tif")["Body"].read()
    assert body == Path(view.artifact).read_bytes()
    assert view.targets[0].result["sha256"] == hashlib.sha256(body).hexdigest()


def test_an_s3_that_fails_ends_the_target_and_the_export_in_error_never_success(session, owner, project, s3_server,
                                                                                 monkeypatch):
    from tests.support.flaky_proxy import FlakyProxy

    monkeypatch.setenv("GEOSHIP_DELIVERY_ATTEMPTS", "2")
    get_settings.cache_clear()
    bucket = s3_server.new_bucket()
    with FlakyProxy(s3_server.url, failures=0, should_fail=lambda method, path: method == "PUT") as proxy:
        credential = add_s3_credential(session, owner=owner, label="flaky", bucket=bucket,
                                       config=S3CredentialConfig(endpoint_url=proxy.url),
                                       secret=S3Secret(access_key_id=s3_server.writer.access_key_id,
                                                       secret_access_key=s3_server.writer.secret_access_key))
        session.commit()
        export_id = submit(session, owner, [TargetRequest(kind="http"), TargetRequest(
            kind="s3", config={"bucket": bucket}, credential_id=credential.id)])
        proxy.remaining = 1000  # from now on the S3 service answers every write with 503
        with pytest.raises(Exception, match="target 1 \\(s3\\)"):
            export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.error and "S3 failed writing" in view.error and "SlowDown" in view.error
    assert [t.status for t in view.targets] == [TargetStatus.success, TargetStatus.error]
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_dropbox_filled_mid_upload_ends_in_error_with_no_file_left(session, owner, project, credentials, dropbox,
                                                                     monkeypatch):
    monkeypatch.setenv("GEOSHIP_DROPBOX_UPLOAD_THRESHOLD", "4096")
    monkeypatch.setenv("GEOSHIP_DROPBOX_CHUNK_SIZE", "4096")
    get_settings.cache_clear()
    export_id = submit(session, owner, [TargetRequest(kind="dropbox", credential_id=credentials["dropbox"])])
    dropbox.account.fill_on_append = dropbox.account.allocated  # another device fills it while we upload
    with pytest.raises(Exception, match="ran out of space"):
        export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.error and "no file was left behind" in view.error
    assert dropbox.account.files == {} and dropbox.account.sessions == {}


def test_the_export_flow_takes_an_export_request_from_the_prefect_ui(session, owner, project):
    result = export_flow(request=ExportRequest(project="alps", aoi=SMALL_AOI, resolution=240), user=owner.name)
    session.expire_all()
    export = session.get(Export, result["export_id"])
    assert export.status == ExportStatus.success and export.owner_id == owner.id and export.attempts == 1
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(export.flow_run_id)
    assert run.name == f"export-{export.id}"  # renamed after the export it created
    assert run.parameters["request"]["project"] == "alps" and run.parameters["user"] == owner.name
    assert run.parameters["request"]["targets"] == [{"kind": "http", "config": {}, "credential_id": None}]
