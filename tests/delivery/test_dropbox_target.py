"""Dropbox delivery through the real `dropbox` SDK against the loopback fake of the API v2 wire format."""

import hashlib
from pathlib import Path

import pytest

from delivery.credentials import list_credentials
from delivery.dropbox_target import DropboxDelivery, add_dropbox_credential, content_hash
from models.errors import CredentialRefused, InsufficientSpace, InvalidRequest
from models.schemas import DropboxSecret, TargetRequest
from models.settings import get_settings
from tests.support.fake_dropbox import content_hash as server_content_hash


def add(session, user, secret: DropboxSecret, label="box"):
    credential = add_dropbox_credential(session, owner=user, label=label, secret=secret)
    session.commit()
    return credential


def test_adding_a_token_checks_it_with_dropbox(session, user, dropbox):
    token = dropbox.issue_token()
    credential = add(session, user, DropboxSecret(access_token=token))
    assert credential.hint == f"token ...{token[-4:]}"
    assert dropbox.account.calls == ["/2/users/get_space_usage"]


def test_a_bad_token_is_refused_clearly_and_not_stored(session, user, dropbox):
    with pytest.raises(CredentialRefused, match="Dropbox refused the credential .*invalid access token") as info:
        add(session, user, DropboxSecret(access_token="sl.not-a-real-token"))
    assert "sl.not-a-real-token" not in str(info.value)
    assert list_credentials(session, owner=user) == []


def test_a_refresh_token_with_its_app_key_works(session, user, dropbox, make_artifact, make_target):
    dropbox.account.refresh_tokens["refresh-abc-123456"] = "app-key-1"
    credential = add(session, user, DropboxSecret(refresh_token="refresh-abc-123456", app_key="app-key-1"))
    assert credential.hint == "app app-key-1"
    artifact = make_artifact(1000)
    result = DropboxDelivery().deliver(session, artifact, make_target(artifact, "dropbox", {}, credential.id))
    assert result["path"] == f"/geoship/export-{artifact.export_id}.tif"
    assert "/oauth2/token" in dropbox.account.calls


def test_the_dropbox_content_hash_matches_dropbox_s(tmp_path):
    data = hashlib.shake_256(b"x").digest(9 * 1024 * 1024 + 17)  # three 4 MiB blocks, the last partial
    path = tmp_path / "f"
    path.write_bytes(data)
    assert content_hash(path) == server_content_hash(data)


def test_a_small_file_is_one_upload(session, user, dropbox, make_artifact, make_target):
    credential = add(session, user, DropboxSecret(access_token=dropbox.issue_token()))
    artifact = make_artifact(200_000)
    target = make_target(artifact, "dropbox", {"folder": "maps/2026/"}, credential.id)
    result = DropboxDelivery().deliver(session, artifact, target)
    path = f"/maps/2026/export-{artifact.export_id}.tif"
    assert result["path"] == path and result["bytes"] == 200_000
    assert hashlib.sha256(dropbox.account.files[path.lower()]).hexdigest() == artifact.sha256
    assert dropbox.account.calls[-1] == "/2/files/upload"


def test_a_large_file_goes_through_an_upload_session_in_chunks(session, user, dropbox, make_artifact, make_target, monkeypatch):
    monkeypatch.setenv("GEOSHIP_DROPBOX_UPLOAD_THRESHOLD", str(1024**2))
    monkeypatch.setenv("GEOSHIP_DROPBOX_CHUNK_SIZE", str(1024**2))
    get_settings.cache_clear()
    credential = add(session, user, DropboxSecret(access_token=dropbox.issue_token()))
    artifact = make_artifact(3 * 1024**2 + 500)
    result = DropboxDelivery().deliver(session, artifact, make_target(artifact, "dropbox", {}, credential.id))
    uploads = [c for c in dropbox.account.calls if "upload" in c]
    assert uploads == ["/2/files/upload_session/start", *["/2/files/upload_session/append_v2"] * 2,
                       "/2/files/upload_session/finish"]
    stored = dropbox.account.files[result["path"].lower()]
    assert hashlib.sha256(stored).hexdigest() == artifact.sha256


def test_a_full_dropbox_is_refused_at_request_time_with_the_numbers(session, user, dropbox):
    dropbox.account.allocated, dropbox.account.other_usage = 10_000_000, 9_500_000
    credential = add(session, user, DropboxSecret(access_token=dropbox.issue_token()))
    target = TargetRequest(kind="dropbox", credential_id=credential.id)
    with pytest.raises(InvalidRequest) as info:
        DropboxDelivery().check(session, owner_id=user.id, target=target, field="targets.1", estimate_bytes=600_000)
    assert str(info.value) == (
        "targets.1.credential_id: the Dropbox has too little free space for this export (uncompressed estimate): "
        "9,500,000 of 10,000,000 bytes used, 500,000 free, 600,000 needed")
    DropboxDelivery().check(session, owner_id=user.id, target=target, field="targets.1", estimate_bytes=400_000)


def test_space_is_checked_again_before_upload(session, user, dropbox, make_artifact, make_target):
    credential = add(session, user, DropboxSecret(access_token=dropbox.issue_token()))
    artifact = make_artifact(50_000)
    target = make_target(artifact, "dropbox", {}, credential.id)
    dropbox.account.allocated, dropbox.account.other_usage = 100_000, 80_000
    with pytest.raises(InsufficientSpace, match="80,000 of 100,000 bytes used, 20,000 free, 50,000 needed"):
        DropboxDelivery().deliver(session, artifact, target)
    assert not any("upload" in c for c in dropbox.account.calls)


def test_running_out_of_space_in_a_plain_upload_leaves_no_file(dropbox, make_artifact):
    from delivery import dropbox_target

    artifact = make_artifact(50_000)
    client = dropbox_target.client_for(DropboxSecret(access_token=dropbox.issue_token()))
    dropbox.account.allocated, dropbox.account.other_usage = 60_000, 30_000
    with pytest.raises(InsufficientSpace, match="ran out of space uploading to /geoship/"):
        dropbox_target.upload(client, Path(artifact.uri), f"/geoship/{artifact.filename}", threshold=10**6, chunk_size=10**6)
    assert dropbox.account.files == {}


def test_running_out_of_space_mid_session_ends_in_error_and_leaves_no_file(session, user, dropbox, make_artifact,
                                                                          make_target, monkeypatch):
    monkeypatch.setenv("GEOSHIP_DROPBOX_UPLOAD_THRESHOLD", str(1024**2))
    monkeypatch.setenv("GEOSHIP_DROPBOX_CHUNK_SIZE", str(1024**2))
    get_settings.cache_clear()
    credential = add(session, user, DropboxSecret(access_token=dropbox.issue_token()))
    artifact = make_artifact(3 * 1024**2)
    target = make_target(artifact, "dropbox", {}, credential.id)
    dropbox.account.allocated = 4 * 1024**2
    dropbox.account.fill_on_append = 2 * 1024**2  # another device syncs 2 MiB in while we upload
    with pytest.raises(InsufficientSpace, match="ran out of space .* no file was left behind"):
        DropboxDelivery().deliver(session, artifact, target)
    assert dropbox.account.files == {} and dropbox.account.sessions == {}
    assert dropbox.account.calls[-1] == "/2/files/upload_session/finish"



def test_verify_and_cleanup(session, user, dropbox, make_artifact, make_target):
    credential = add(session, user, DropboxSecret(access_token=dropbox.issue_token()))
    artifact = make_artifact(10_000, with_sidecars=True)
    target = make_target(artifact, "dropbox", {}, credential.id)
    target.result = DropboxDelivery().deliver(session, artifact, target)
    assert len(dropbox.account.files) == 3  # the file, its STAC and the manifest
    assert DropboxDelivery().verify(session, artifact, target) is None
    dropbox.account.files[target.result["path"].lower()] = b"something else"
    assert "is not the rendered file" in DropboxDelivery().verify(session, artifact, target)
    DropboxDelivery().cleanup(session, target)
    assert dropbox.account.files == {}
    assert "cannot be read back" in DropboxDelivery().verify(session, artifact, target)
