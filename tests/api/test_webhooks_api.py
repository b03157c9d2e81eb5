"""/api/v1/webhook and an export's webhook over HTTP: the secret shown once, URLs checked naming the field,
attempts shown to the owner only."""

import pytest

from delivery.webhook_settings import account_webhook, signing_secret
from flows.webhooks import send_webhooks
from tests.conftest import SMALL_AOI


def export_body(**extra) -> dict:
    return {"project": "alps", "aoi": SMALL_AOI, "resolution": 480, **extra}


def test_the_account_webhook_shows_its_secret_once(people, webhook_receiver, session):
    ada = people["ada"].client
    assert ada.get("/api/v1/webhook").status_code == 404
    made = ada.put("/api/v1/webhook", json={"url": webhook_receiver.url})
    assert made.status_code == 200
    secret = made.json()["secret"]
    assert secret.startswith("whsec_") and made.json()["url"] == webhook_receiver.url
    assert signing_secret(account_webhook(session, people["ada"].user.id)) == secret

    shown = ada.get("/api/v1/webhook").json()
    assert shown["secret"] is None and shown["secret_hint"] == f"...{secret[-4:]}" and shown["url"] == webhook_receiver.url
    again = ada.put("/api/v1/webhook", json={"url": None}).json()
    assert again["secret"] is None and again["url"] is None  # changing the URL keeps (and hides) the secret

    rotated = ada.post("/api/v1/webhook/secret").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    session.expire_all()
    assert signing_secret(account_webhook(session, people["ada"].user.id)) == rotated
    assert people["bob"].client.get("/api/v1/webhook").status_code == 404  # one's settings are one's own


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://10.0.0.5/hook"}, "url"),
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": 5}, "url"),
    ({}, "url"),
    ({"url": "https://93.184.215.14/x", "secret": "mine"}, "secret"),
])
def test_bad_account_webhooks_get_a_4xx_naming_the_field(people, body, field):
    answer = people["ada"].client.put("/api/v1/webhook", json=body)
    assert answer.status_code == 422
    assert field in answer.text


def test_an_export_with_a_webhook_shows_a_new_secret_once_and_its_attempts_to_its_owner(people, webhook_receiver, session):
    ada = people["ada"].client
    first = ada.post("/api/v1/exports", json=export_body(webhook_url=webhook_receiver.url))
    assert first.status_code == 201, first.text
    secret = first.json()["webhook_secret"]
    assert secret.startswith("whsec_") and first.json()["webhook_url"] == webhook_receiver.url
    second = ada.post("/api/v1/exports", json=export_body(webhook_url=webhook_receiver.url))
    assert second.json()["webhook_secret"] is None  # made once, shown once
    assert ada.get(f"/api/v1/exports/{first.json()['id']}").json()["webhook_secret"] is None

    export_id = first.json()["id"]
    send_webhooks(export_id)
    attempts = ada.get(f"/api/v1/exports/{export_id}/webhooks")
    assert attempts.status_code == 200
    (attempt,) = attempts.json()
    assert attempt["event"] == "geoship.export.pending" and attempt["ok"] and attempt["status_code"] == 200
    assert attempt["attempt"] == 1 and attempt["host"] == "127.0.0.1" and attempt["final"]
    assert people["bob"].client.get(f"/api/v1/exports/{export_id}/webhooks").status_code == 404


@pytest.mark.parametrize(("url", "reason"), [
    ("http://192.168.1.1/hook", "private, loopback or reserved address"),
    ("http://localhost:9/hook", "private, loopback or reserved address"),
    ("https://u:p@example.com/hook", "carries credentials"),
    ("mailto:ops@example.com", "not an http(s) URL"),
])
def test_an_export_with_a_refused_webhook_is_not_created(people, webhook_receiver, url, reason):
    ada = people["ada"].client
    answer = ada.post("/api/v1/exports", json=export_body(webhook_url=url))
    assert answer.status_code == 422
    assert "webhook_url" in answer.text and reason in answer.text
    assert ada.get("/api/v1/exports").json()["total"] == 0
    assert ada.get("/api/v1/webhook").status_code == 404  # no secret made for a refused request
    assert ada.post("/api/v1/exports/estimate", json=export_body(webhook_url=url)).status_code == 422
