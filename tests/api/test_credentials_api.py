"""/api/v1/credentials against moto's S3 and the fake Dropbox: checked on the way in, secrets write-only."""

import pytest


@pytest.fixture
def s3_body(s3_server):
    return {"kind": "s3", "label": "work", "access_key_id": s3_server.writer.access_key_id,
            "secret_access_key": s3_server.writer.secret_access_key, "endpoint_url": s3_server.url,
            "bucket": s3_server.new_bucket(), "prefix": "geoship"}


def test_credentials_are_created_listed_and_deleted_without_secrets(people, s3_body, dropbox):
    ada, bob = people["ada"], people["bob"]
    created = ada.client.post("/api/v1/credentials", json=s3_body)
    assert created.status_code == 201, created.text
    view = created.json()
    assert set(view) == {"id", "kind", "label", "hint", "config", "created_at"}
    assert view["hint"] == f"...{s3_body['access_key_id'][-4:]}"
    token = dropbox.issue_token()
    box = ada.client.post("/api/v1/credentials", json={"kind": "dropbox", "label": "box", "access_token": token})
    assert box.status_code == 201
    listed = ada.client.get("/api/v1/credentials")
    assert [c["label"] for c in listed.json()] == ["work", "box"]
    for secret in (s3_body["secret_access_key"], s3_body["access_key_id"], token):
        assert secret not in created.text + box.text + listed.text
    assert bob.client.get("/api/v1/credentials").json() == []
    assert bob.client.delete(f"/api/v1/credentials/{view['id']}").status_code == 404
    assert ada.client.delete(f"/api/v1/credentials/{view['id']}").status_code == 204
    assert [c["label"] for c in ada.client.get("/api/v1/credentials").json()] == ["box"]


@pytest.mark.parametrize("change, status, needle", [
    ({"secret_access_key": "x" * 40}, 422, "the secret access key does not match"),
    ({"bucket": "no-such-bucket-anywhere"}, 422, "the bucket does not exist"),
    ({"bucket": "UPPER"}, 422, "not a valid S3 bucket name"),
    ({"kind": "ftp"}, 422, "kind"),
    ({"label": ""}, 422, "label"),
])
def test_bad_credentials_are_refused_naming_the_problem(people, s3_body, change, status, needle):
    response = people["ada"].client.post("/api/v1/credentials", json={**s3_body, **change})
    assert response.status_code == status, response.text
    assert needle in response.text
    assert "x" * 40 not in response.text
    assert people["ada"].client.get("/api/v1/credentials").json() == []


def test_an_export_to_a_dropbox_without_room_is_refused_with_the_numbers(people, dropbox, session):
    ada = people["ada"]
    dropbox.account.allocated, dropbox.account.other_usage = 1_000_000, 990_000
    box = ada.client.post("/api/v1/credentials", json={"kind": "dropbox", "label": "box",
                                                       "access_token": dropbox.issue_token()}).json()
    response = ada.client.post("/api/v1/exports", json={"project": "alps", "resolution": 240,
                                                         "targets": [{"kind": "dropbox", "credential_id": box["id"]}]})
    assert response.status_code == 422
    assert response.json()["field"] == "targets.0.credential_id"
    assert "990,000 of 1,000,000 bytes used, 10,000 free" in response.json()["reason"]
    other = people["bob"].client.post("/api/v1/exports", json={"project": "open", "resolution": 480, "targets": [
        {"kind": "dropbox", "credential_id": box["id"]}]})
    assert other.status_code == 422 and f"you have no credential {box['id']}" in other.json()["reason"]
