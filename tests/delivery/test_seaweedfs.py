"""One end-to-end delivery against a second, independent S3 implementation: SeaweedFS (`weed mini`),
checking signatures. It binds fixed ports (8333 for S3), so one instance runs at a time."""

from __future__ import annotations

import hashlib

import pytest

from delivery.s3_target import S3Delivery, add_s3_credential
from models.errors import CredentialRefused, PermanentDeliveryError
from models.schemas import S3CredentialConfig, S3Secret
from models.settings import get_settings
from tests.support.seaweedfs import ACCESS_KEY, ENDPOINT, SECRET_KEY


def test_delivery_to_seaweedfs_single_and_multipart(seaweedfs, session, user, make_artifact, make_target, monkeypatch):
    monkeypatch.setenv("GEOSHIP_S3_MULTIPART_THRESHOLD", str(5 * 1024**2))
    monkeypatch.setenv("GEOSHIP_S3_PART_SIZE", str(5 * 1024**2))
    get_settings.cache_clear()
    seaweedfs.create_bucket(Bucket="geoship-e2e")
    config = S3CredentialConfig(endpoint_url=ENDPOINT)
    with pytest.raises(CredentialRefused, match="secret access key does not match"):
        add_s3_credential(session, owner=user, label="bad", bucket="geoship-e2e", config=config,
                          secret=S3Secret(access_key_id=ACCESS_KEY, secret_access_key="not-the-secret"))
    with pytest.raises(PermanentDeliveryError, match="the bucket does not exist"):
        add_s3_credential(session, owner=user, label="nobucket", bucket="not-created-here", config=config,
                          secret=S3Secret(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY))
    credential = add_s3_credential(session, owner=user, label="weed", bucket="geoship-e2e", prefix="drop", config=config,
                                   secret=S3Secret(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY))
    session.commit()

    for size, parts in ((200_000, 1), (11 * 1024**2 + 7, 3)):
        artifact = make_artifact(size, seed=size)
        target = make_target(artifact, "s3", {"bucket": "geoship-e2e", "prefix": "drop"}, credential.id)
        result = S3Delivery().deliver(session, artifact, target)
        assert (result["bytes"], result["parts"]) == (size, parts)
        body = seaweedfs.get_object(Bucket="geoship-e2e", Key=result["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == artifact.sha256
    assert seaweedfs.list_multipart_uploads(Bucket="geoship-e2e").get("Uploads", []) == []
