"""Where webhooks may go. A webhook URL is the user's, but the request comes from inside our network, so it must
not be a way in (SSRF): only http(s) URLs without credentials whose host resolves to public addresses, checked
when the URL is given and again before every POST and redirect (a name may resolve elsewhere by then). Hosts
listed in GEOSHIP_WEBHOOK_PRIVATE_HOSTS skip the address check (an internal receiver; "*" for any).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from models.errors import InvalidRequest
from models.settings import get_settings

MAX_URL_LENGTH = 2048


class AddressRefused(Exception):
    """The URL may not be reached from here; the message says why."""


class HostUnresolved(AddressRefused):
    """The URL's host does not resolve (now: a name server may be away for a moment)."""


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as a webhook before any lookup, or None."""
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host"
    if parts.username is not None or parts.password is not None:
        return "carries credentials; webhooks are authenticated by their signature instead"
    return None


def _private_host_allowed(host: str) -> bool:
    allowed = get_settings().webhook_private_hosts
    return "*" in allowed or host.lower() in (h.lower() for h in allowed)


def check_address(url: str) -> None:
    """Raise `AddressRefused` unless every address `url`'s host resolves to is public (or the host is allowed)."""
    parts = urlsplit(url)
    host = parts.hostname
    if _private_host_allowed(host):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise HostUnresolved(f"its host {host!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if not address.is_global or address.is_multicast:
            raise AddressRefused(f"its host {host!r} is a private, loopback or reserved address ({address}); this "
                                 "server sends webhooks to public addresses only")


def check_webhook_url(url: str, field: str = "webhook_url") -> str:
    """`url` if webhooks may go there; else `InvalidRequest` naming `field` and the reason."""
    if (problem := url_problem(url)) is not None:
        raise InvalidRequest(field, f"the webhook URL {problem}")
    try:
        check_address(url)
    except AddressRefused as exc:
        raise InvalidRequest(field, f"the webhook URL is refused: {exc}") from None
    return url
