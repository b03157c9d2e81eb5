"""`geoship webhook ...` and `geoship export --webhook`: the secret printed once, refused URLs exit 2 naming the
field, attempts listed per export."""

import json

from typer.testing import CliRunner

from cli.main import app
from delivery.webhook_settings import account_webhook, signing_secret
from models.catalogue import get_or_create_user
from models.settings import get_settings
from tests.cli.test_export import aoi_file, farms  # noqa: F401 (fixtures)

runner = CliRunner()


def test_setting_a_webhook_prints_the_secret_once(geoship_home, session, monkeypatch):
    monkeypatch.setenv("GEOSHIP_WEBHOOK_PRIVATE_HOSTS", '["hooks.internal"]')
    get_settings.cache_clear()
    refused = runner.invoke(app, ["webhook", "set", "http://10.0.0.9/hook"])
    assert refused.exit_code == 2 and "url: the webhook URL is refused" in refused.stderr
    assert runner.invoke(app, ["webhook", "show"]).exit_code != 0  # nothing was made

    made = runner.invoke(app, ["webhook", "set", "http://hooks.internal/geoship", "--json"])
    assert made.exit_code == 0, made.stderr
    secret = made.stderr.split("X-Geoship-Signature): ", 1)[1].split()[0]
    assert json.loads(made.stdout)["url"] == "http://hooks.internal/geoship" and "secret" not in json.loads(made.stdout)
    assert signing_secret(account_webhook(session, get_or_create_user(session, name="local").id)) == secret

    shown = runner.invoke(app, ["webhook", "show"])
    assert shown.exit_code == 0 and secret not in shown.stdout + shown.stderr and f"...{secret[-4:]}" in shown.stdout
    cleared = runner.invoke(app, ["webhook", "clear", "--json"])
    assert json.loads(cleared.stdout)["url"] is None and secret not in cleared.stderr
    rotated = runner.invoke(app, ["webhook", "rotate-secret"])
    assert "whsec_" in rotated.stderr and secret not in rotated.stderr


def test_an_export_with_a_refused_webhook_exits_2_and_a_good_one_is_kept(farms, aoi_file, monkeypatch):  # noqa: F811
    base = ["export", "--project", farms, "--aoi", str(aoi_file), "--resolution", "480", "--json"]
    refused = runner.invoke(app, [*base, "--webhook", "http://169.254.169.254/latest"])
    assert refused.exit_code == 2 and "webhook_url: the webhook URL is refused" in refused.stderr
    monkeypatch.setenv("GEOSHIP_WEBHOOK_PRIVATE_HOSTS", '["hooks.internal"]')
    get_settings.cache_clear()
    made = runner.invoke(app, [*base, "--webhook", "http://hooks.internal/x"])
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["webhook_url"] == "http://hooks.internal/x" and "whsec_" in made.stderr
    again = runner.invoke(app, [*base, "--webhook", "http://hooks.internal/x"])
    assert "whsec_" not in again.stderr  # the secret exists now: not shown again
    attempts = runner.invoke(app, ["webhook", "attempts", str(json.loads(made.stdout)["id"]), "--json"])
    assert attempts.exit_code == 0 and json.loads(attempts.stdout) == []  # pending: nothing sent by this command
    assert runner.invoke(app, ["webhook", "attempts", "999"]).exit_code == 2
