"""Webhooks from the export log's outbox: each status change POSTed once, signed with the owner's secret, retried
with backoff and given up in the end, each attempt recorded; never twice at once, never failing the export."""

import hashlib
import hmac
import json
import threading
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from delivery.webhook_settings import account_webhook, signing_secret
from flows.events import event_id
from flows.services.status import claim_export
from flows.services.submission import create_export
from flows.webhooks import send_webhooks
from models.db import get_engine
from models.schemas import ExportRequest, TargetRequest
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export, ExportLog, WebhookAttempt
from models.timestamps import utcnow
from tests.conftest import SMALL_AOI
from tests.support.webhook_receiver import Receiver


def order(session, owner, url: str | None) -> Export:
    export = create_export(session, owner=owner, request=ExportRequest(
        project="alps", aoi=SMALL_AOI, resolution=480, targets=[TargetRequest(kind="http")], webhook_url=url))
    session.commit()
    return export


def attempts_of(export_id: int) -> list[WebhookAttempt]:
    with Session(get_engine()) as session:
        return list(session.exec(select(WebhookAttempt).where(WebhookAttempt.export_id == export_id)
                                 .order_by(WebhookAttempt.id)).all())


def lines_of(export_id: int) -> list[ExportLog]:
    with Session(get_engine()) as session:
        return list(session.exec(select(ExportLog).where(ExportLog.export_id == export_id).order_by(ExportLog.id)).all())


def test_a_status_change_is_posted_once_signed_with_the_owners_secret(session, owner, project, webhook_receiver):
    export = order(session, owner, webhook_receiver.url)
    secret = signing_secret(account_webhook(session, owner.id))
    assert secret.startswith("whsec_")

    assert send_webhooks(export.id) == 1
    (got,) = webhook_receiver.received
    assert got.headers["X-Geoship-Signature"] == "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    event = json.loads(got.body)
    (line,) = [line for line in lines_of(export.id) if line.status is not None]
    assert event["id"] == str(event_id(line)) == got.headers["X-Geoship-Delivery"]
    assert event["type"] == got.headers["X-Geoship-Event"] == "geoship.export.pending"
    assert event["status"] == "pending" and event["message"] == line.message
    assert event["export"]["id"] == export.id and event["export"]["url"].endswith(f"/api/v1/exports/{export.id}")
    assert [t["kind"] for t in event["export"]["targets"]] == ["http"]
    assert lines_of(export.id)[0].notified_at is not None

    (attempt,) = attempts_of(export.id)
    assert (attempt.ok, attempt.final, attempt.attempt, attempt.status_code, attempt.host) == (True, True, 1, 200, "127.0.0.1")
    assert send_webhooks(export.id) == 0 and len(webhook_receiver.received) == 1  # nothing is sent twice

    assert claim_export(export.id)  # the next change is the next event
    assert send_webhooks(export.id) == 1
    assert json.loads(webhook_receiver.received[1].body)["type"] == "geoship.export.submitted"


def test_the_account_url_serves_exports_that_name_none_and_no_url_means_nothing_sent(session, owner, project, webhook_receiver):
    quiet = order(session, owner, None)
    assert send_webhooks(quiet.id) == 0
    assert all(line.notified_at is not None for line in lines_of(quiet.id) if line.status)  # nothing left to do
    from delivery.webhook_settings import set_account_webhook

    set_account_webhook(session, owner, webhook_receiver.url)
    session.commit()
    told = order(session, owner, None)
    assert send_webhooks(told.id) == 1 and json.loads(webhook_receiver.received[0].body)["export"]["id"] == told.id


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(session, owner, project, webhook_receiver, monkeypatch):
    monkeypatch.setenv("GEOSHIP_WEBHOOK_ATTEMPTS", "3")
    monkeypatch.setenv("GEOSHIP_WEBHOOK_BACKOFF_SECONDS", "60")
    get_settings.cache_clear()
    webhook_receiver.status = 500
    export = order(session, owner, webhook_receiver.url)

    assert send_webhooks(export.id) == 1
    (line,) = [line for line in lines_of(export.id) if line.status is not None]
    assert line.notified_at is None
    assert timedelta(seconds=55) < line.webhook_due_at - utcnow() <= timedelta(seconds=60)  # the first backoff
    assert send_webhooks(export.id) == 0  # not due yet

    def come_due():
        with get_engine().begin() as connection:
            connection.execute(ExportLog.__table__.update().where(ExportLog.id == line.id).values(webhook_due_at=utcnow()))

    come_due()
    assert send_webhooks(export.id) == 1
    (line,) = [line for line in lines_of(export.id) if line.status is not None]
    assert timedelta(seconds=175) < line.webhook_due_at - utcnow() <= timedelta(seconds=180)  # tripled
    come_due()
    assert send_webhooks(export.id) == 1
    come_due()
    assert send_webhooks(export.id) == 0  # given up after three

    attempts = attempts_of(export.id)
    assert [(a.attempt, a.ok, a.status_code, a.final) for a in attempts] == [(1, False, 500, False), (2, False, 500, False),
                                                                             (3, False, 500, True)]
    assert {r.headers["X-Geoship-Delivery"] for r in webhook_receiver.received} == {str(event_id(line))}  # one event, three tries
    warnings = [entry.message for entry in lines_of(export.id) if entry.level == "warning"]
    assert warnings[0].startswith("webhook to 127.0.0.1: geoship.export.pending attempt 1 of 3 failed (answered 500)")
    assert warnings[-1] == "webhook to 127.0.0.1: gave up on geoship.export.pending after 3 attempts: answered 500"
    session.expire_all()
    assert session.get(Export, export.id).status == ExportStatus.pending  # the export is none the worse


def test_a_timeout_is_recorded_and_retried(session, owner, project, webhook_receiver):
    webhook_receiver.delay = 2.5
    export = order(session, owner, webhook_receiver.url)
    assert send_webhooks(export.id) == 1
    (attempt,) = attempts_of(export.id)
    assert (attempt.ok, attempt.final, attempt.status_code, attempt.error) == (False, False, None, "no answer within 1 s")


def test_an_address_refused_at_send_time_is_given_up_at_once(session, owner, project, webhook_receiver, monkeypatch):
    export = order(session, owner, webhook_receiver.url)
    monkeypatch.setenv("GEOSHIP_WEBHOOK_PRIVATE_HOSTS", "[]")  # the operator has closed the door since
    get_settings.cache_clear()
    assert send_webhooks(export.id) == 1
    (attempt,) = attempts_of(export.id)
    assert not attempt.ok and attempt.final and attempt.status_code is None
    assert "is refused, its host '127.0.0.1' is a private, loopback or reserved address" in attempt.error
    assert webhook_receiver.received == []


def test_two_senders_at_once_post_each_change_once(session, owner, project, webhook_receiver):
    webhook_receiver.delay = 0.3
    export = order(session, owner, webhook_receiver.url)
    assert claim_export(export.id)
    results = []
    senders = [threading.Thread(target=lambda: results.append(send_webhooks(export.id))) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert sum(results) == 2
    assert sorted(json.loads(r.body)["status"] for r in webhook_receiver.received) == ["pending", "submitted"]
    assert len(attempts_of(export.id)) == 2


def test_a_rotated_secret_signs_the_next_post(session, owner, project, webhook_receiver):
    from delivery.webhook_settings import rotate_webhook_secret

    export = order(session, owner, webhook_receiver.url)
    new_secret = rotate_webhook_secret(session, owner).secret
    session.commit()
    send_webhooks(export.id)
    (got,) = webhook_receiver.received
    assert got.headers["X-Geoship-Signature"] == "sha256=" + hmac.new(new_secret.encode(), got.body, hashlib.sha256).hexdigest()


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_an_export_tells_its_webhook_every_change_and_succeeds_when_it_fails(session, owner, project, webhook_receiver):
    from flows.export_flow import export_flow
    from flows.webhooks import send_webhooks_soon

    told = order(session, owner, webhook_receiver.url)
    failing = Receiver()
    failing.status = 503
    try:
        ignored = order(session, owner, failing.url)
        for export in (told, ignored):
            assert claim_export(export.id)
            export_flow(export.id)
        # The run hands its POSTs to a background thread; wait for them here as Python's exit would.
        send_webhooks_soon(None)
        received = webhook_receiver.wait_for(5)
        statuses = [json.loads(r.body)["status"] for r in received]
        assert sorted(statuses) == sorted(["pending", "submitted", "rendering", "delivering", "success"])
        assert len({r.headers["X-Geoship-Delivery"] for r in received}) == 5
        assert uuid.UUID(json.loads(received[0].body)["id"])
        session.expire_all()
        assert session.get(Export, ignored.id).status == ExportStatus.success  # a failing webhook fails nothing
        failing.wait_for(5)
        assert {json.loads(r.body)["export"]["id"] for r in failing.received} == {ignored.id}
    finally:
        failing.close()
