"""What a source file is now, in a few words, to tell whether it has changed since an earlier render: a local
file's size and modification time; an object's ETag and size (S3, with the platform's credentials and
endpoint from the standard AWS environment, as the tile actors read it); an HTTP file's ETag or Last-Modified,
and its size. None when the file cannot tell (an HTTP server that sends neither), so that nothing is reused on a
guess.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import urlparse

from ray_render.remote import PROBE_TIMEOUT_S, platform_s3_client

# HEADs asked at once: a project of hundreds of remote scenes answers in a few round trips, not hundreds.
PARALLEL_HEADS = 16


def file_signatures(uris: list[str]) -> dict[str, str | None]:
    """The signature of each file (`file_signature`), the remote ones asked in parallel through one S3 client."""
    uris = list(dict.fromkeys(uris))
    s3 = platform_s3_client(attempts=2) if any(urlparse(u).scheme == "s3" for u in uris) else None
    remote = [u for u in uris if urlparse(u).scheme in ("s3", "http", "https")]
    found = {u: file_signature(u) for u in uris if u not in remote}
    if remote:
        with ThreadPoolExecutor(min(PARALLEL_HEADS, len(remote)), thread_name_prefix="signature") as pool:
            found.update(zip(remote, pool.map(partial(file_signature, s3=s3), remote), strict=True))
    return {u: found[u] for u in uris}


def file_signature(uri: str, s3=None) -> str | None:
    """The signature of the file at `uri` (a path, s3:// or http(s)://), or None when it cannot be told. `s3`: a
    client of the platform's (`remote.platform_s3_client`) to ask with, else one is made."""
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return _object_signature(uri, s3 or platform_s3_client(attempts=2))
    if scheme in ("http", "https"):
        return _http_signature(uri)
    try:
        stat = os.stat(uri)
    except OSError:
        return None
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"


def _object_signature(uri: str, s3) -> str | None:
    import botocore.exceptions

    parsed = urlparse(uri)
    try:
        head = s3.head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError):
        return None
    return f"etag={head['ETag']};size={head['ContentLength']}"


def _http_signature(uri: str) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(uri, method="HEAD"), timeout=PROBE_TIMEOUT_S) as answer:
            headers = answer.headers
    except (urllib.error.URLError, OSError):
        return None
    etag = headers.get("ETag")
    # A weak ETag promises the same meaning, not the same bytes: then only Last-Modified will do.
    version = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    if version is None:
        return None
    return f"version={version};size={headers.get('Content-Length')}"
