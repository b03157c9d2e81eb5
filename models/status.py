"""Status enums of exports and their delivery targets, and the kinds of targets and credentials."""

from __future__ import annotations

from enum import StrEnum


class ExportStatus(StrEnum):
    """Where an export is on its path. Members are in order; a status only moves forward."""

    pending = "pending"
    submitted = "submitted"
    rendering = "rendering"
    delivering = "delivering"
    success = "success"
    error = "error"

    @property
    def rank(self) -> int:
        return list(ExportStatus).index(self)

    @property
    def is_final(self) -> bool:
        return self in (ExportStatus.success, ExportStatus.error)

    def earlier(self) -> list[ExportStatus]:
        """The statuses an export may move to this one from."""
        return [s for s in ExportStatus if s.rank < self.rank and not s.is_final]


class Priority(StrEnum):
    """How soon an export starts: interactive ones (small, or asked for) go ahead of bulk ones."""

    interactive = "interactive"
    bulk = "bulk"


class TargetStatus(StrEnum):
    """Status of one delivery target of an export."""

    pending = "pending"
    delivering = "delivering"
    success = "success"
    error = "error"


class TargetKind(StrEnum):
    """Where an export can be delivered."""

    http = "http"
    s3 = "s3"
    dropbox = "dropbox"


class CredentialKind(StrEnum):
    """The services a stored credential is for."""

    s3 = "s3"
    dropbox = "dropbox"
