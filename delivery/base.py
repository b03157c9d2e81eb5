"""The interface every delivery target implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from delivery.names import name_of
from models.errors import InvalidRequest
from models.rendered import Rendered
from models.schemas import TargetRequest
from models.tables import ExportTarget

Config = TypeVar("Config", bound=BaseModel)


@dataclass(frozen=True)
class Artifact:
    """The rendered file to deliver, as held by the artifact store."""

    export_id: int
    uri: str
    bytes: int
    sha256: str
    # The stored STAC and manifest, delivered beside the file (none for renders published before manifests).
    sidecar_uris: tuple[str, ...] = ()

    @classmethod
    def of(cls, export_id: int, rendered: Rendered) -> Artifact:
        """The deliverable of a render, as stored."""
        return cls(export_id=export_id, uri=rendered.uri, bytes=rendered.bytes, sha256=rendered.sha256,
                   sidecar_uris=tuple(rendered.sidecar_uris))

    @property
    def filename(self) -> str:
        """export-<id>.tif, or export-<id>.zip for a sharded export."""
        return name_of(self.uri)


class Delivery(Protocol):
    """One kind of target: checked when an export is requested, then given the rendered file."""

    def check(self, session: Session, *, owner_id: int, target: TargetRequest, field: str, estimate_bytes: int) -> None:
        """Refuse a target that cannot work (bad settings, a missing or foreign credential, no room), naming `field`."""

    def deliver(self, session: Session, artifact: Artifact, target: ExportTarget) -> dict[str, Any]:
        """Ship the artifact to `target`; returns the target's result (JSON-able, no secrets)."""

    def verify(self, session: Session, artifact: Artifact, target: ExportTarget) -> str | None:
        """None when the target holds the artifact (size and checksum), else what is wrong."""

    def cleanup(self, session: Session, target: ExportTarget) -> None:
        """Remove what a delivery to `target` left (a partial upload, or the file of a cancelled export)."""


def parse_config(model: type[Config], config: dict[str, Any], field: str) -> Config:
    """`config` validated as `model`; the first problem becomes an `InvalidRequest` naming the exact field."""
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(".".join([field, *map(str, first["loc"])]), first["msg"]) from None
