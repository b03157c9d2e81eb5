"""What a source file is now, in a few words, to tell whether it has changed since an earlier render: a local
file's size and modification time; an object's ETag and size (S3, with the platform's credentials and
endpoint from the standard AWS environment, as the tile actors read it); an HTTP file's ETag or Last-Modified,
and its size. None when the file cannot tell (an HTTP server that sends neither), so that nothing is reused on a
guess.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from ray_render.remote import PROBE_TIMEOUT_S, platform_s3_client


def file_signature(uri: str) -> str | None:
    """The signature of the file at `uri` (a path, s3:// or http(s)://), or None when it cannot be told."""
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return _object_signature(uri)
    if scheme in ("http", "https"):
        return _http_signature(uri)
    try:
        stat = os.stat(uri)
    except OSError:
        return None
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"


def _object_signature(uri: str) -> str | None:
    import botocore.exceptions

    parsed = urlparse(uri)
    try:
        head = platform_s3_client(attempts=2).head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
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
