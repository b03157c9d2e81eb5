"""One signed webhook POST against a real webhook_receiver on loopback, and the address checks that keep webhooks out of
our own network: private and loopback addresses, credentials in the URL, redirects elsewhere."""

import hashlib
import hmac
import json

import pytest

from delivery.webhook import post_event, signature
from delivery.webhook_addresses import check_webhook_url
from models.errors import InvalidRequest
from models.settings import get_settings
from tests.support.webhook_receiver import Receiver

SECRET = "whsec_test-secret"
BODY = json.dumps({"id": "e1", "type": "geoship.export.success"}).encode()



def test_the_signature_is_hmac_sha256_of_the_exact_body():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, BODY) == f"sha256={expected}"
    assert signature(SECRET, BODY + b" ") != signature(SECRET, BODY)


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/hook", "not an http(s) URL"),
    ("https:///hook", "not an http(s) URL"),
    ("https://user:pass@example.com/hook", "carries credentials"),
    ("http://127.0.0.1:8000/hook", "private, loopback or reserved address (127.0.0.1)"),
    ("http://localhost/hook", "private, loopback or reserved"),
    ("http://10.1.2.3/hook", "(10.1.2.3)"),
    ("http://192.168.0.10/hook", "(192.168.0.10)"),
    ("http://169.254.169.254/latest/meta-data", "(169.254.169.254)"),  # the cloud's metadata service
    ("http://100.64.0.1/hook", "(100.64.0.1)"),
    ("http://[::1]/hook", "(::1)"),
    ("http://[::ffff:10.0.0.1]/hook", "(10.0.0.1)"),
    ("http://0.0.0.0/hook", "(0.0.0.0)"),
    ("http://nowhere.invalid/hook", "does not resolve"),
    ("https://example.com:99999/hook", "not a valid URL"),
    ("https://example.com/" + "x" * 2100, "longer than 2048"),
])
def test_urls_that_would_reach_inside_are_refused_naming_the_field(geoship_home, url, reason):
    with pytest.raises(InvalidRequest) as caught:
        check_webhook_url(url)
    assert caught.value.field == "webhook_url"
    assert reason in caught.value.reason


def test_a_public_address_is_accepted_and_a_listed_private_host_too(geoship_home, monkeypatch):
    assert check_webhook_url("https://93.184.215.14/hooks") == "https://93.184.215.14/hooks"
    monkeypatch.setenv("GEOSHIP_WEBHOOK_PRIVATE_HOSTS", '["hooks.internal", "127.0.0.1"]')
    get_settings.cache_clear()
    assert check_webhook_url("http://127.0.0.1:9000/x")
    with pytest.raises(InvalidRequest):
        check_webhook_url("http://127.0.0.2:9000/x")  # listed hosts only, not their neighbours


def test_a_post_carries_the_body_and_its_signature(webhook_receiver):
    outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={"X-Geoship-Event": "geoship.export.success"})
    assert outcome.ok and outcome.status_code == 200 and outcome.host == "127.0.0.1"
    (got,) = webhook_receiver.received
    assert got.path == "/hooks/geoship?team=7" and got.body == BODY
    assert got.headers["X-Geoship-Signature"] == "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Geoship-Event"] == "geoship.export.success"


def test_a_500_is_a_failure_worth_retrying(webhook_receiver):
    webhook_receiver.status = 500
    outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={})
    assert not outcome.ok and outcome.retry and outcome.status_code == 500 and outcome.error == "answered 500"


def test_a_receiver_that_does_not_answer_in_time_is_a_failure_worth_retrying(webhook_receiver):
    webhook_receiver.delay = 3  # the timeout is 1 s
    outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={})
    assert not outcome.ok and outcome.retry and outcome.status_code is None
    assert outcome.error == "no answer within 1 s" and outcome.duration_ms < 2500


def test_nothing_listening_is_a_failure_worth_retrying(webhook_receiver):
    url = webhook_receiver.url
    webhook_receiver.close()
    outcome = post_event(url, BODY, secret=SECRET, headers={})
    assert not outcome.ok and outcome.retry and "could not connect" in outcome.error


def test_a_redirect_to_a_private_address_is_not_followed(webhook_receiver):
    inside = Receiver(host="127.0.0.2")  # loopback, but not a listed host: it stands for the network inside
    try:
        webhook_receiver.status, webhook_receiver.location = 307, inside.url
        outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={})
        assert not outcome.ok and not outcome.retry  # the URL is wrong: trying again would not help
        assert "the redirect's URL is refused" in outcome.error and "(127.0.0.2)" in outcome.error
        assert len(webhook_receiver.received) == 1 and inside.received == []
    finally:
        inside.close()


def test_a_307_to_an_allowed_url_is_followed_with_the_same_signed_body(webhook_receiver):
    final = Receiver()
    try:
        webhook_receiver.status, webhook_receiver.location = 307, final.url
        outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={})
        assert outcome.ok
        (got,) = final.received
        assert got.body == BODY and got.headers["X-Geoship-Signature"] == signature(SECRET, BODY)
    finally:
        final.close()


def test_a_302_is_not_followed(webhook_receiver):
    webhook_receiver.status, webhook_receiver.location = 302, "https://example.com/elsewhere"
    outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={})
    assert not outcome.ok and not outcome.retry and outcome.status_code == 302
    assert "only 307 and 308 redirects are followed" in outcome.error


def test_redirect_loops_end(webhook_receiver):
    webhook_receiver.status = 308
    webhook_receiver.location = webhook_receiver.url
    outcome = post_event(webhook_receiver.url, BODY, secret=SECRET, headers={})
    assert not outcome.ok and outcome.error == "more than 3 redirects" and len(webhook_receiver.received) == 4
