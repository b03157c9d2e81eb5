"""The interface every delivery target implements, and the registry keyed by target kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlmodel import Session

from models.tables import ExportTarget


@dataclass(frozen=True)
class Artifact:
    """The rendered file to deliver."""

    export_id: int
    path: Path
    bytes: int
    sha256: str


class Delivery(Protocol):
    """Ships an artifact to one target and returns the target's result (JSON-able, no secrets)."""

    def deliver(self, session: Session, artifact: Artifact, target: ExportTarget) -> dict[str, Any]: ...
