"""Scenes in object storage and on HTTP servers: GDAL paths, settings from the standard AWS environment, and
what a failed read means.

A scene may be `s3://bucket/key` or an `http(s)://` COG. The platform's read credentials and endpoint come
from the standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_REGION`, and `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for S3-compatible stores), read where the render
starts and handed to every tile actor, which puts them in its own process's environment: GDAL reads them
there, and they never pass through a log, a GDAL config dump or the Ray dashboard (actor arguments are not shown).

Paths are turned into GDAL's own (`/vsis3/`, `/vsicurl/`) before opening, so rasterio does not build a boto3
session of its own, and network reads are tuned for COGs: no directory listing on open, a block cache, and
HTTP retries with backoff on 429 and 5xx.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

REMOTE_SCHEMES = ("s3", "http", "https")
# Passed to the tile actors as they are (GDAL reads these names itself).
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_NO_SIGN_REQUEST", "AWS_REQUEST_PAYER", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
# GDAL's network settings for reading COGs; an operator's own value of any of them wins.
COG_NETWORK = {
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "0.5",  # doubled on each retry
    "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
    "GDAL_HTTP_TIMEOUT": "30",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 1024 * 1024),
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 * 1024 * 1024),
}
# Set only while a remote scene is opened: a local scene may have sidecar files (.msk, .ovr) worth finding.
ON_REMOTE_OPEN = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
# What a store answers for an object that is not there or not ours to read: retrying cannot help.
PERMANENT_STATUSES = (401, 403, 404)
PROBE_TIMEOUT_S = 10


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in REMOTE_SCHEMES


def gdal_path(uri: str) -> str:
    """The path GDAL opens for a scene URI: /vsis3/ for s3://, /vsicurl/ for http(s)://, else the URI itself."""
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return "/vsis3/" + uri[len("s3://"):]
    if scheme in ("http", "https"):
        return "/vsicurl/" + uri
    return uri


def scene_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables a tile actor needs to read remote scenes as this process would: the AWS ones present here,
    and GDAL's settings (`gdal_options`)."""
    found = {name: environ[name] for name in AWS_VARIABLES if environ.get(name)}
    if "AWS_REGION" not in found and "AWS_DEFAULT_REGION" in found:
        found["AWS_REGION"] = found["AWS_DEFAULT_REGION"]
    return {**found, **gdal_options(environ)}


def gdal_options(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """GDAL's settings (no secrets): the endpoint derived from `AWS_ENDPOINT_URL(_S3)`, and the COG network tuning."""
    found = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        found["AWS_S3_ENDPOINT"] = parsed.netloc + parsed.path.rstrip("/")
        found["AWS_HTTPS"] = "NO" if parsed.scheme == "http" else "YES"
        found["AWS_VIRTUAL_HOSTING"] = "FALSE"  # S3-compatible stores serve bucket/key paths
    for name, value in COG_NETWORK.items():
        found[name] = environ.get(name, value)
    return found


def adopt(environment: Mapping[str, str]) -> None:
    """Make `environment` this process's own (a tile actor's worker, which is the actor's alone)."""
    os.environ.update(environment)


def platform_s3_client(attempts: int):
    """A boto3 S3 client with the platform's credentials and endpoint (the standard AWS environment), as the tile
    actors read scenes, for quick questions about an object (a HEAD): short timeouts, `attempts` tries."""
    import boto3
    import botocore.config

    config = botocore.config.Config(connect_timeout=PROBE_TIMEOUT_S, read_timeout=PROBE_TIMEOUT_S,
                                    retries={"max_attempts": attempts})
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)  # the environment as it is now


def probe(uri: str) -> int | None:
    """The HTTP status the store answers to a HEAD of the scene's object, or None when it does not answer.

    GDAL reports a missing object, a refused one and a timed-out request alike ("does not exist in the file
    system"), so after a failed open the store itself is asked, with the same credentials and endpoint.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        import botocore.exceptions

        client = platform_s3_client(attempts=1)
        try:
            client.head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
            return 200
        except botocore.exceptions.ClientError as exc:
            return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) or None
        except (botocore.exceptions.BotoCoreError, OSError):
            return None
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(uri, method="HEAD"), timeout=PROBE_TIMEOUT_S) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def is_missing_or_forbidden(uri: str) -> bool:
    """Whether a remote scene that failed to open is gone or refused (permanent), not a passing network failure."""
    return probe(uri) in PERMANENT_STATUSES
