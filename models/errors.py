"""One error root for geoship, split into permanent (bad input, refusals) and retryable families.

Errors inherit the builtin they resemble, so callers may catch either.
"""

from __future__ import annotations


class GeoshipError(Exception):
    """Root of every error geoship raises on purpose."""


class PermanentError(GeoshipError):
    """Retrying will not help: the input or the request is wrong."""


class RetryableError(GeoshipError):
    """A transient failure (I/O, a busy service); the same call may succeed later."""


class InvalidRequest(PermanentError, ValueError):
    """A request field is invalid; the message names the field and the reason."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidToolTree(InvalidRequest):
    """The tool tree is malformed: an unknown node, a missing band, a type mismatch, too deep."""


class InvalidAOI(InvalidRequest):
    """The area of interest is not a usable polygon, or does not overlap the imagery."""


class NotFound(PermanentError, LookupError):
    """A project, scene, export or link does not exist (or the caller may not know it does)."""


class Unauthorized(PermanentError):
    """The caller did not prove who they are (no token, or a token we do not know)."""


class Forbidden(PermanentError, PermissionError):
    """The caller is known but may not do this (e.g. export scenes they may not read)."""


class Conflict(PermanentError):
    """The request conflicts with existing state (a duplicate name, a status that cannot move)."""


class SceneReadError(RetryableError, OSError):
    """A scene could not be opened or read (a network failure, a timeout): worth another try."""


class SceneUnavailable(PermanentError, OSError):
    """A scene's file is missing, or the platform's credentials may not read it: no retry will help."""


class RenderError(RetryableError):
    """Rendering failed for a reason other than bad input (a worker died, an unexpected error in a tile)."""


class OutputRefused(PermanentError):
    """The artifact store refuses the render's output (a missing bucket, denied writes): no retry will help."""


class DeliveryError(GeoshipError):
    """A delivery target failed; see the permanent/retryable subclasses."""


class PermanentDeliveryError(DeliveryError, PermanentError):
    """Delivery cannot succeed as asked: a missing bucket, a denied write, a refused credential, a full Dropbox."""


class RetryableDeliveryError(DeliveryError, RetryableError):
    """Delivery failed for a transient reason (a network error, a busy service) after its retries."""


class CredentialRefused(PermanentDeliveryError):
    """The storage service refused the credential (unknown key, wrong secret, expired or revoked token)."""


class InsufficientSpace(PermanentDeliveryError):
    """The destination has no room for the file."""


class SecretsUnavailable(PermanentError):
    """Stored secrets cannot be decrypted with the configured key(s)."""


class RateLimited(RetryableError):
    """Too many requests; `retry_after` is how many seconds to wait."""

    def __init__(self, message: str, retry_after: int):
        self.retry_after = retry_after
        super().__init__(message)


class LinkExpired(PermanentError):
    """A download link is past its expiry or revoked."""
