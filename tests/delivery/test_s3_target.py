"""S3 delivery against moto's S3 server on loopback (signatures and IAM permissions checked)."""

import hashlib

import pytest
from sqlmodel import select

from delivery.s3 import MIN_PART, part_size_for, upload_file
from delivery.s3_target import S3Delivery, add_s3_credential, client_for
from models.errors import CredentialRefused, InvalidRequest, PermanentDeliveryError
from models.schemas import S3CredentialConfig, S3Secret, TargetRequest
from models.settings import get_settings
from models.tables import ExportTarget

pytestmark = pytest.mark.usefixtures("s3_server")


def secret_of(keys, secret=None) -> S3Secret:
    return S3Secret(access_key_id=keys.access_key_id, secret_access_key=secret or keys.secret_access_key)


def add(session, user, s3_server, bucket, keys=None, label="s3", secret=None):
    credential = add_s3_credential(session, owner=user, label=label, secret=secret_of(keys or s3_server.writer, secret),
                                   config=S3CredentialConfig(endpoint_url=s3_server.url), bucket=bucket, prefix="in")
    session.commit()
    return credential


def test_adding_a_credential_probes_the_bucket_and_leaves_nothing(session, user, s3_server):
    bucket = s3_server.new_bucket()
    credential = add(session, user, s3_server, bucket)
    assert credential.hint == f"...{s3_server.writer.access_key_id[-4:]}"
    assert credential.config == {"region": "us-east-1", "endpoint_url": s3_server.url}
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # the probe was deleted


@pytest.mark.parametrize("case, error, needle", [
    ("wrong secret", CredentialRefused, "the secret access key does not match"),
    ("unknown key", CredentialRefused, "the access key id is not known"),
    ("read-only key", PermanentDeliveryError, "access denied"),
    ("missing bucket", PermanentDeliveryError, "checking bucket 'no-such-bucket-here': the bucket does not exist"),
])
def test_bad_credentials_are_refused_clearly_and_not_stored(session, user, s3_server, case, error, needle):
    bucket = s3_server.new_bucket()
    keys, secret = s3_server.writer, None
    if case == "wrong secret":
        secret = "x" * 40
    elif case == "unknown key":
        keys = type(keys)("AKIAUNKNOWNUNKNOWN00", "y" * 40)
    elif case == "read-only key":
        keys = s3_server.reader
    elif case == "missing bucket":
        bucket = "no-such-bucket-here"
    with pytest.raises(error) as info:
        add(session, user, s3_server, bucket, keys=keys, secret=secret)
    assert needle in str(info.value)
    assert (secret or keys.secret_access_key) not in str(info.value)
    from delivery.credentials import list_credentials

    assert list_credentials(session, owner=user) == []


def test_part_sizes_stay_inside_s3_limits():
    assert part_size_for(10 * 1024**2, 1) == MIN_PART
    assert part_size_for(10 * 1024**2, 8 * 1024**2) == 8 * 1024**2
    huge = 200 * 1024**3  # 200 GiB with 16 MiB parts would need 12,800 parts
    size = part_size_for(huge, 16 * 1024**2)
    assert -(-huge // size) <= 10_000 and size >= 16 * 1024**2


def deliver(session, user, s3_server, make_artifact, make_target, size, **config):
    bucket = s3_server.new_bucket()
    credential = add(session, user, s3_server, bucket)
    artifact = make_artifact(size)
    target = make_target(artifact, "s3", {"bucket": bucket, "prefix": "exports/", **config}, credential.id)
    return bucket, artifact, S3Delivery().deliver(session, artifact, target)


def test_a_small_file_is_one_verified_put(session, user, s3_server, make_artifact, make_target):
    bucket, artifact, result = deliver(session, user, s3_server, make_artifact, make_target, 300_000)
    assert result["key"] == f"exports/export-{artifact.export_id}.tif" and result["parts"] == 1
    assert result["url"] == f"s3://{bucket}/{result['key']}"
    obj = s3_server.client().get_object(Bucket=bucket, Key=result["key"])
    body = obj["Body"].read()
    assert hashlib.sha256(body).hexdigest() == artifact.sha256 == obj["Metadata"]["sha256"] == result["sha256"]


def test_a_large_file_goes_multipart_and_is_verified(session, user, s3_server, make_artifact, make_target, monkeypatch):
    monkeypatch.setenv("GEOSHIP_S3_MULTIPART_THRESHOLD", str(5 * 1024**2))
    monkeypatch.setenv("GEOSHIP_S3_PART_SIZE", str(5 * 1024**2))
    get_settings.cache_clear()
    size = 12 * 1024**2 + 12345
    bucket, artifact, result = deliver(session, user, s3_server, make_artifact, make_target, size)
    assert result["parts"] == 3 and result["etag"].endswith("-3") and result["bytes"] == size
    body = s3_server.client().get_object(Bucket=bucket, Key=result["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == artifact.sha256
    assert s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_owner_full_control_is_granted_when_asked(session, user, s3_server, make_artifact, make_target):
    bucket, _, result = deliver(session, user, s3_server, make_artifact, make_target, 1000, owner_full_control=True)
    assert result["acl"] == "bucket-owner-full-control"
    grants = s3_server.client().get_object_acl(Bucket=bucket, Key=result["key"])["Grants"]
    assert any(g["Permission"] == "FULL_CONTROL" for g in grants)


def test_a_failed_multipart_upload_is_aborted(session, user, s3_server, make_artifact, tmp_path):
    bucket = s3_server.new_bucket()
    client = client_for(secret_of(s3_server.writer), S3CredentialConfig(endpoint_url=s3_server.url))
    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * (11 * 1024**2))
    s3_server.client().put_bucket_policy(Bucket=bucket, Policy=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",'
        f' "Resource": "arn:aws:s3:::{bucket}/*", "Condition": {{"NumericGreaterThan": {{"s3:partNumber": "1"}}}}}}]}}'
    ))
    with pytest.raises(PermanentDeliveryError):
        upload_file(client, path, bucket, "x.tif", sha256="0" * 64, threshold=MIN_PART, part_size=MIN_PART)
    assert s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_request_time_checks_name_the_field(session, user, s3_server):
    bucket = s3_server.new_bucket()
    credential = add(session, user, s3_server, bucket)
    check = S3Delivery().check
    with pytest.raises(InvalidRequest, match="targets.0.config.bucket"):
        check(session, owner_id=user.id, target=TargetRequest(kind="s3", credential_id=credential.id), field="targets.0",
              estimate_bytes=1)
    with pytest.raises(InvalidRequest, match=f"targets.0.credential_id: you have no credential {credential.id}"):
        foreign = TargetRequest(kind="s3", config={"bucket": bucket}, credential_id=credential.id)
        check(session, owner_id=user.id + 1, target=foreign, field="targets.0", estimate_bytes=1)


def test_a_bucket_deleted_after_the_request_fails_the_target_clearly(session, user, s3_server, make_artifact, make_target):
    bucket = s3_server.new_bucket()
    credential = add(session, user, s3_server, bucket)
    artifact = make_artifact(100)
    target = make_target(artifact, "s3", {"bucket": bucket}, credential.id)
    s3_server.client().delete_bucket(Bucket=bucket)
    with pytest.raises(PermanentDeliveryError, match="the bucket does not exist"):
        S3Delivery().deliver(session, artifact, session.get(ExportTarget, target.id))


def test_transient_s3_failures_are_retried_with_backoff(session, user, s3_server, make_artifact, tmp_path):
    from tests.support.flaky_proxy import FlakyProxy

    bucket = s3_server.new_bucket()
    path = tmp_path / "f.bin"
    path.write_bytes(hashlib.shake_256(b"parts").digest(11 * 1024**2))
    # Two 503 SlowDown answers to the first part uploads (the same part, retried), then service resumes.
    with FlakyProxy(s3_server.url, failures=2, should_fail=lambda method, p: method == "PUT" and "partNumber=2" in p) as proxy:
        client = client_for(secret_of(s3_server.writer), S3CredentialConfig(endpoint_url=proxy.url))
        uploaded = upload_file(client, path, bucket, "retried.tif", sha256="0" * 64, threshold=MIN_PART, part_size=MIN_PART)
    assert proxy.failed == [proxy.failed[0]] * 2 and "partNumber=2" in proxy.failed[0]
    assert uploaded.parts == 3
    body = s3_server.client().get_object(Bucket=bucket, Key="retried.tif")["Body"].read()
    assert body == path.read_bytes()


def test_an_s3_that_keeps_failing_is_a_retryable_error_after_the_attempts(session, user, s3_server, tmp_path, monkeypatch):
    from models.errors import RetryableDeliveryError
    from tests.support.flaky_proxy import FlakyProxy

    monkeypatch.setenv("GEOSHIP_DELIVERY_ATTEMPTS", "3")
    get_settings.cache_clear()
    bucket = s3_server.new_bucket()
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    with FlakyProxy(s3_server.url, failures=100, should_fail=lambda method, p: method == "PUT") as proxy:
        client = client_for(secret_of(s3_server.writer), S3CredentialConfig(endpoint_url=proxy.url))
        with pytest.raises(RetryableDeliveryError, match="S3 failed writing s3://.* after retries: SlowDown"):
            upload_file(client, path, bucket, "never.tif", sha256="0" * 64, threshold=MIN_PART, part_size=MIN_PART)
    assert len(proxy.failed) == 3


def test_cleanup_aborts_unfinished_uploads_and_removes_a_delivered_file(session, user, s3_server, make_artifact,
                                                                         make_target):
    bucket = s3_server.new_bucket()
    credential = add(session, user, s3_server, bucket)
    artifact = make_artifact(1000, with_sidecars=True)
    target = make_target(artifact, "s3", {"bucket": bucket, "prefix": "out"}, credential.id)
    key = f"out/export-{artifact.export_id}.tif"
    writer = s3_server.client()
    writer.create_multipart_upload(Bucket=bucket, Key=key)  # a cancelled run's upload, half done
    S3Delivery().cleanup(session, target)
    assert writer.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    target.result = S3Delivery().deliver(session, artifact, target)  # delivered, then the export is cancelled
    assert writer.list_objects_v2(Bucket=bucket)["KeyCount"] == 3  # the file, its STAC and the manifest
    S3Delivery().cleanup(session, target)
    assert writer.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_verify_checks_size_etag_and_checksum(session, user, s3_server, make_artifact, make_target):
    bucket, artifact, result = deliver(session, user, s3_server, make_artifact, make_target, 5000)
    target = session.exec(select(ExportTarget).where(ExportTarget.export_id == artifact.export_id)).one()
    target.result = result
    assert S3Delivery().verify(session, artifact, target) is None
    s3_server.client().put_object(Bucket=bucket, Key=result["key"], Body=b"not it")
    assert "is not the rendered file" in S3Delivery().verify(session, artifact, target)
    s3_server.client().delete_object(Bucket=bucket, Key=result["key"])
    assert "cannot be read back" in S3Delivery().verify(session, artifact, target)
