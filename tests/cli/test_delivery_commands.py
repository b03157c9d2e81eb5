"""`geoship credentials`, `export --to s3/dropbox`, `export retry-delivery`, `links` and `keys rotate`
through the real command line, against moto's S3 and the fake Dropbox on loopback."""

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app
from tests.cli.test_export import aoi_file, farms  # noqa: F401 (fixtures)

runner = CliRunner()


def geoship(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def s3_credential(geoship_home, s3_server):
    """An S3 credential labelled 'bucket' for a fresh bucket, added through the CLI with secrets from the environment."""
    bucket = s3_server.new_bucket()
    env = {"GEOSHIP_S3_ACCESS_KEY_ID": s3_server.writer.access_key_id,
           "GEOSHIP_S3_SECRET_ACCESS_KEY": s3_server.writer.secret_access_key}
    result = geoship("credentials", "add-s3", "--label", "bucket", "--bucket", bucket, "--endpoint-url", s3_server.url, env=env)
    assert result.exit_code == 0, result.stderr
    return bucket


@pytest.fixture
def dropbox_credential(geoship_home, dropbox):
    result = geoship("credentials", "add-dropbox", "--label", "box", env={"GEOSHIP_DROPBOX_ACCESS_TOKEN": dropbox.issue_token()})
    assert result.exit_code == 0, result.stderr
    return "box"


def test_credentials_are_added_listed_and_removed_without_showing_secrets(s3_credential, dropbox_credential, s3_server,
                                                                         dropbox):
    listed = geoship("credentials", "list", "--json")
    assert listed.exit_code == 0
    views = json.loads(listed.stdout)
    assert [(v["kind"], v["label"]) for v in views] == [("s3", "bucket"), ("dropbox", "box")]
    assert views[0]["hint"] == f"...{s3_server.writer.access_key_id[-4:]}"
    table = geoship("credentials", "list").stdout
    for secret in (s3_server.writer.secret_access_key, s3_server.writer.access_key_id, *dropbox.account.tokens):
        assert secret not in listed.stdout and secret not in table
    assert geoship("credentials", "remove", str(views[1]["id"])).exit_code == 0
    assert [v["label"] for v in json.loads(geoship("credentials", "list", "--json").stdout)] == ["bucket"]
    missing = geoship("credentials", "remove", "999")
    assert missing.exit_code == 2 and "credential 999 not found" in missing.stderr


def test_bad_credentials_exit_2_with_the_reason(geoship_home, s3_server, dropbox):
    bucket = s3_server.new_bucket()
    env = {"GEOSHIP_S3_ACCESS_KEY_ID": s3_server.writer.access_key_id, "GEOSHIP_S3_SECRET_ACCESS_KEY": "wrong" * 8}
    result = geoship("credentials", "add-s3", "--label", "x", "--bucket", bucket, "--endpoint-url", s3_server.url, env=env)
    assert result.exit_code == 2
    assert "S3 refused the credential" in result.stderr and "secret access key does not match" in result.stderr
    assert "wrong" * 8 not in result.stderr
    token = geoship("credentials", "add-dropbox", "--label", "y", env={"GEOSHIP_DROPBOX_ACCESS_TOKEN": "sl.bogus-token"})
    assert token.exit_code == 2 and "Dropbox refused the credential" in token.stderr
    assert json.loads(geoship("credentials", "list", "--json").stdout) == []


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_export_to_s3_and_dropbox_then_retry_the_failed_delivery(farms, aoi_file, s3_credential,  # noqa: F811
                                                                  dropbox_credential, s3_server, dropbox):
    args = ["export", "--project", farms, "--aoi", str(aoi_file), "--resolution", "240", "--to", "s3", "--to", "dropbox",
            "--s3-bucket", s3_credential, "--s3-prefix", "out", "--s3-credential", "bucket",
            "--dropbox-credential", "box", "--wait", "--json"]
    dropbox.account.other_usage = dropbox.account.allocated - 1000  # a nearly full Dropbox: refused, with the numbers
    refused = geoship(*args)
    assert refused.exit_code == 2 and "targets.1.credential_id: the Dropbox has too little free space" in refused.stderr

    dropbox.account.other_usage = 0
    ok = geoship(*args)
    assert ok.exit_code == 0, ok.stderr
    view = json.loads(ok.stdout)
    assert view["status"] == "success" and [t["status"] for t in view["targets"]] == ["success", "success"]
    s3_result, box_result = view["targets"][0]["result"], view["targets"][1]["result"]
    assert s3_result["url"] == f"s3://{s3_credential}/out/export-{view['id']}.tif"
    assert box_result["path"] == f"/geoship/export-{view['id']}.tif"

    # Deliver the same export to Dropbox again after the file there was lost: no re-rendering.
    dropbox.account.files.clear()
    again = geoship("export", "retry-delivery", str(view["id"]), "--target", "1", "--json")
    assert again.exit_code == 0, again.stderr
    retried = json.loads(again.stdout)
    assert retried["status"] == "success" and retried["artifact"] == view["artifact"]
    assert dropbox.account.files[box_result["path"].lower()]
    busy = geoship("export", "retry-delivery", str(view["id"]))
    assert busy.exit_code == 2 and "already delivered" in busy.stderr


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_links_are_listed_revoked_and_survive_key_rotation(farms, aoi_file):  # noqa: F811
    result = geoship("export", "--project", farms, "--aoi", str(aoi_file), "--resolution", "240", "--link-quota", "3",
                     "--link-rate", "5000000", "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    url = json.loads(result.stdout)["targets"][0]["result"]["url"]
    (link,) = json.loads(geoship("links", "list", "--json").stdout)
    assert (link["url"], link["state"], link["download_quota"], link["byte_rate_limit"]) == (url, "live", 3, 5_000_000)

    rotated = geoship("keys", "rotate")
    assert rotated.exit_code == 0 and "re-encrypted 1 secret(s)" in rotated.stdout
    (after,) = json.loads(geoship("links", "list", "--json").stdout)
    assert after["url"] == url  # the same link, still valid under the new key
    client = TestClient(create_app())
    path = httpx.URL(url).path
    assert client.get(path).status_code == 200

    assert geoship("links", "revoke", str(link["id"])).exit_code == 0
    assert client.get(path).status_code == 410
    (revoked,) = json.loads(geoship("links", "list", "--json").stdout)
    assert (revoked["state"], revoked["requests"], revoked["downloads_used"]) == ("revoked", 1, 1)
