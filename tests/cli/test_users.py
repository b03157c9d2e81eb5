"""`geoship users` and `geoship projects share`: tokens shown once and stored hashed; sharing opens a project
and its scenes to another user's API calls."""

from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app
from models.tables import User
from tests.cli.test_export import farms  # noqa: F401 (fixture)

runner = CliRunner()


def test_a_user_gets_a_token_once_that_authenticates_the_api(geoship_home, session):
    created = runner.invoke(app, ["users", "create", "carol"])
    assert created.exit_code == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("gs_") and len(token) > 40
    stored = session.exec(select(User).where(User.name == "carol")).one()
    assert token not in (stored.token_hash or "") and stored.token_hash
    client = TestClient(create_app(), headers={"Authorization": f"Bearer {token}"})
    assert client.get("/api/v1/exports").status_code == 200
    listed = runner.invoke(app, ["users", "list", "--json"])
    assert token not in listed.stdout and '"name": "carol"' in listed.stdout
    assert runner.invoke(app, ["users", "create", "carol"]).exit_code == 2

    renewed = runner.invoke(app, ["users", "token", "carol"]).stdout.strip()
    assert client.get("/api/v1/exports").status_code == 401  # the old token stopped working
    assert TestClient(create_app(), headers={"Authorization": f"Bearer {renewed}"}).get("/api/v1/exports").status_code == 200


def test_sharing_a_project_lets_another_user_export_it(farms):  # noqa: F811
    token = runner.invoke(app, ["users", "create", "dave"]).stdout.strip().splitlines()[-1]
    client = TestClient(create_app(), headers={"Authorization": f"Bearer {token}"})
    assert client.post("/api/v1/exports", json={"project": 1, "resolution": 480}).status_code == 404
    shared = runner.invoke(app, ["projects", "share", farms, "dave"])
    assert shared.exit_code == 0 and "2 scene(s) with dave" in shared.stdout
    assert client.post("/api/v1/exports", json={"project": 1, "resolution": 480}).status_code == 201
