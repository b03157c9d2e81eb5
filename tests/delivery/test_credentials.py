"""Credentials at rest: sealed with the server key, listed without secrets, rotated without loss."""

import os
import stat

import pytest
from sqlalchemy import text

from delivery.credentials import list_credentials, open_secret, remove_credential, store_credential
from delivery.http_link import issue_link, link_url
from delivery.sealing import reseal_all, seal, unseal
from models.errors import Conflict, NotFound, SecretsUnavailable
from models.keys import get_secret_keys, new_key, push_key_file, retire_old_keys
from models.schemas import S3Secret
from models.settings import get_settings
from models.status import CredentialKind, ExportStatus
from models.tables import Credential, Export, ExportTarget, User

SECRET = S3Secret(access_key_id="AKIAEXAMPLEKEY123456", secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def add(session, user, label="mine") -> Credential:
    credential = store_credential(session, owner=user, kind=CredentialKind.s3, label=label, secret=SECRET,
                                  config={"region": "eu-west-1"}, hint="...3456")
    session.commit()
    return credential


def test_the_key_file_is_made_once_with_mode_0600(geoship_home):
    keys = get_secret_keys()
    path = geoship_home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert get_secret_keys() == keys and len(keys[0]) >= 48


def test_secrets_are_stored_only_sealed_and_open_again(session, user):
    credential = add(session, user)
    row = session.execute(text("SELECT * FROM credential")).mappings().one()
    dumped = " ".join(str(v) for v in row.values())
    assert SECRET.secret_access_key.get_secret_value() not in dumped
    assert SECRET.access_key_id.get_secret_value() not in dumped
    opened = open_secret(session.get(Credential, credential.id), S3Secret)
    assert opened.secret_access_key.get_secret_value() == SECRET.secret_access_key.get_secret_value()
    assert "wJalr" not in repr(opened) and "wJalr" not in str(opened)  # SecretStr keeps it out of logs


def test_listing_shows_hints_never_secrets(session, user):
    add(session, user, "work")
    (view,) = list_credentials(session, owner=user)
    assert (view.label, view.kind, view.hint, view.config) == ("work", CredentialKind.s3, "...3456", {"region": "eu-west-1"})
    assert "EXAMPLEKEY" not in view.model_dump_json()
    with pytest.raises(Conflict, match="already have a credential labelled 'work'"):
        add(session, user, "work")


def test_a_wrong_key_is_a_clear_error(session, user, monkeypatch):
    sealed = seal("hello")
    monkeypatch.setenv("GEOSHIP_SECRET_KEY", "another-key-entirely-another-key-entirely")
    get_settings.cache_clear()
    with pytest.raises(SecretsUnavailable, match="cannot be decrypted with the configured key"):
        unseal(sealed)


def test_rotation_reencrypts_everything_and_retires_the_old_key(session, user):
    credential = add(session, user)
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=1, grid={})
    session.add(export)
    session.flush()
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    url, before = link_url(link), session.get(Credential, credential.id).sealed
    old_keys = get_secret_keys()

    push_key_file(new_key())
    assert len(get_secret_keys()) == 2
    assert reseal_all(session) == 2
    session.commit()
    assert retire_old_keys() == 1 and get_secret_keys()[0] not in old_keys

    session.expire_all()
    rotated = session.get(Credential, credential.id)
    assert rotated.sealed != before
    assert open_secret(rotated, S3Secret).secret_access_key.get_secret_value().startswith("wJalr")
    assert link_url(session.get(type(link), link.id)) == url  # download links keep working


def test_rotation_with_keys_in_the_environment(session, user, monkeypatch):
    monkeypatch.setenv("GEOSHIP_SECRET_KEY", "old-old-old-old-old-old-old-old-old")
    get_settings.cache_clear()
    credential = add(session, user)
    monkeypatch.setenv("GEOSHIP_SECRET_KEY", "new-new-new-new-new-new-new-new-new,old-old-old-old-old-old-old-old-old")
    get_settings.cache_clear()
    reseal_all(session)
    session.commit()
    monkeypatch.setenv("GEOSHIP_SECRET_KEY", "new-new-new-new-new-new-new-new-new")
    get_settings.cache_clear()
    session.expire_all()
    opened = open_secret(session.get(Credential, credential.id), S3Secret)
    assert opened.access_key_id.get_secret_value() == "AKIAEXAMPLEKEY123456"
    assert not os.path.exists(get_settings().home / "secret.key")


def test_removal_is_refused_while_an_unfinished_export_needs_it(session, user):
    credential = add(session, user)
    other = User(name="mallory")
    session.add(other)
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=1, grid={}, status=ExportStatus.rendering)
    session.add(export)
    session.flush()
    session.add(ExportTarget(export_id=export.id, kind="s3", config={}, credential_id=credential.id))
    session.commit()
    with pytest.raises(NotFound):
        remove_credential(session, owner=other, credential_id=credential.id)
    with pytest.raises(Conflict, match=f"needed by export {export.id}"):
        remove_credential(session, owner=user, credential_id=credential.id)
    export.status = ExportStatus.success
    session.add(export)
    session.commit()
    remove_credential(session, owner=user, credential_id=credential.id)
    session.commit()
    assert list_credentials(session, owner=user) == []
