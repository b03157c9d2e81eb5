"""The leak scan: after S3 and Dropbox exports (one delivered, one failing on a revoked token), each telling a
webhook, no secret appears in any log line, CLI output, API response, Prefect flow-run parameter, Prefect log or
artifact, webhook POST, or database column other than the sealed ones."""

import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app
from flows.services.views import export_view
from flows.webhooks import send_webhooks
from models.db import get_engine
from models.tables import Export
from tests.cli.test_export import aoi_file, farms  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("ray_cluster", "prefect_server")
runner = CliRunner()


def prefect_records() -> list[str]:
    """Every flow run's name and parameters, every log line, every artifact and every geoship event the Prefect
    server holds."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        logs = client.read_logs()
        artifacts = client.read_artifacts()
        events = client.read_events(filter=EventFilter(event=EventNameFilter(prefix=["geoship."])), limit=50).events
    assert events, "no geoship event reached the server"
    return ([f"{run.name} {json.dumps(run.parameters, default=str)}" for run in runs] + [log.message for log in logs]
            + [json.dumps(a.data, default=str) for a in artifacts] + [e.model_dump_json() for e in events])


def database_values(engine) -> list[str]:
    """Every value of every column of every table, except the sealed credential secrets."""
    values = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')).mappings():
                values += [f"{table}.{column}={value}" for column, value in row.items()
                           if (table, column) not in {("credential", "sealed"), ("webhook", "secret_sealed")}]
    return values


def test_no_secret_leaks_anywhere(farms, aoi_file, s3_server, dropbox, session, caplog, webhook_receiver):  # noqa: F811
    caplog.set_level(logging.INFO)
    token = dropbox.issue_token()
    # The webhook signing secret is shown once, by the command that makes it; that answer is not scanned.
    made = runner.invoke(app, ["webhook", "set", webhook_receiver.url])
    webhook_secret = made.stderr.split("X-Geoship-Signature): ", 1)[1].split()[0]
    assert webhook_secret.startswith("whsec_")
    secrets = [s3_server.writer.secret_access_key, s3_server.writer.access_key_id, token, webhook_secret]
    outputs = []

    def geoship(*args, env=None):
        result = runner.invoke(app, list(args), env=env)
        outputs.extend([result.stdout, result.stderr])
        return result

    bucket = s3_server.new_bucket()
    assert geoship("credentials", "add-s3", "--label", "s3", "--bucket", bucket, "--endpoint-url", s3_server.url,
                   env={"GEOSHIP_S3_ACCESS_KEY_ID": secrets[1], "GEOSHIP_S3_SECRET_ACCESS_KEY": secrets[0]}).exit_code == 0
    assert geoship("credentials", "add-dropbox", "--label", "box", env={"GEOSHIP_DROPBOX_ACCESS_TOKEN": token}).exit_code == 0
    geoship("credentials", "list")
    geoship("credentials", "list", "--json")
    base = ["export", "--project", farms, "--aoi", str(aoi_file), "--resolution", "240", "--wait", "--json"]
    delivered = geoship(*base, "--to", "http", "--to", "s3", "--to", "dropbox", "--s3-bucket", bucket,
                        "--s3-credential", "s3", "--dropbox-credential", "box")
    assert json.loads(delivered.stdout)["status"] == "success"
    geoship(*base[:-2], "--to", "dropbox", "--dropbox-credential", "box")  # pending...
    dropbox.account.tokens.clear()  # ...and the token is revoked before it runs
    failed = geoship("run", "2", "--json")
    assert failed.exit_code == 1 and "Dropbox refused the credential" in json.loads(failed.stdout)["error"]
    geoship("status", "1")
    geoship("status", "2")
    geoship("links", "list")
    geoship("webhook", "show")
    geoship("webhook", "attempts", "1", "--json")
    send_webhooks()  # what the runs' background senders may not have finished
    posts = webhook_receiver.wait_for(10)

    client = TestClient(create_app())
    url = json.loads(delivered.stdout)["targets"][0]["result"]["url"]
    responses = [client.get(url.split("8000", 1)[1]), client.head(url.split("8000", 1)[1]), client.get("/downloads/nope")]
    views = [export_view(session, session.get(Export, export_id)).model_dump_json() for export_id in (1, 2)]

    haystacks = {
        "CLI output": outputs,
        "log lines": [record.getMessage() for record in caplog.records],
        "API responses": [json.dumps(dict(r.headers)) + (r.text if r.headers.get("content-type") == "application/json" else "")
                          for r in responses] + views,
        "Prefect": prefect_records(),
        "database": database_values(get_engine()),
        "webhook POSTs": [json.dumps({k: v for k, v in p.headers.items() if k != "X-Geoship-Signature"}) + p.body.decode()
                          for p in posts],
    }
    assert all(haystacks.values())  # each place was really looked at
    assert any(t.startswith("export-1-target-") and '"target_id"' in t for t in haystacks["Prefect"])
    for place, texts in haystacks.items():
        for secret in secrets:
            leaks = [t for t in texts if secret in t]
            assert not leaks, f"a secret appears in {place}: {leaks[0][:200]}"
