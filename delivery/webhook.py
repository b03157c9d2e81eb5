"""One signed webhook POST.

Every hop is checked by `delivery.webhook_addresses` before it is made, and a redirect is followed only as a 307
or 308 (the method and body kept) to a URL that passes the same check.

The body is signed with HMAC-SHA256 under the owner's webhook secret: `X-Geoship-Signature: sha256=<hex>` over
the exact bytes of the body, as GitHub signs its webhooks. The body carries the event's id and time, so a
receiver can refuse replays and duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from delivery.webhook_addresses import AddressRefused, HostUnresolved, check_address, url_problem
from models.settings import get_settings

MAX_REDIRECTS = 3
SIGNATURE_HEADER = "X-Geoship-Signature"
USER_AGENT = "geoship-webhook/1"


def signature(secret: str, body: bytes) -> str:
    """The `X-Geoship-Signature` value of `body`: what a receiver recomputes with its copy of the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PostOutcome:
    """How one POST went: `ok` for a 2xx; `retry` when trying again later may go better."""

    host: str
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry: bool = False
    duration_ms: int = 0


def post_event(url: str, body: bytes, *, secret: str, headers: dict[str, str]) -> PostOutcome:
    """POST `body` to `url`, signed with `secret`; never raises."""
    started = time.perf_counter()
    host = urlsplit(url).hostname or "?"

    def outcome(**fields) -> PostOutcome:
        return PostOutcome(host=host, duration_ms=round((time.perf_counter() - started) * 1000), **fields)

    timeout = get_settings().webhook_timeout_seconds
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers,
               SIGNATURE_HEADER: signature(secret, body)}
    # The environment's proxies are ignored: a proxy would reach what the address check refuses.
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for hop in range(MAX_REDIRECTS + 1):
            where = "the redirect's URL" if hop else "the URL"
            if (problem := url_problem(url)) is not None:
                return outcome(ok=False, error=f"not sent: {where} {problem}")
            try:
                check_address(url)
                response = client.post(url, content=body, headers=headers)
            except AddressRefused as exc:
                return outcome(ok=False, retry=isinstance(exc, HostUnresolved), error=f"not sent: {where} is refused, {exc}")
            except httpx.TimeoutException:
                return outcome(ok=False, retry=True, error=f"no answer within {timeout:g} s")
            except httpx.HTTPError as exc:
                return outcome(ok=False, retry=True, error=f"could not connect ({type(exc).__name__})")
            code = response.status_code
            if 200 <= code < 300:
                return outcome(ok=True, status_code=code)
            if code in (307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if 300 <= code < 400:
                return outcome(ok=False, status_code=code, error=f"answered {code}; only 307 and 308 redirects are "
                                                                 "followed (they keep the POST and its body)")
            return outcome(ok=False, status_code=code, retry=True, error=f"answered {code}")
    return outcome(ok=False, error=f"more than {MAX_REDIRECTS} redirects")
