"""Stored credentials: sealed on the way in, listed without their secrets, opened only for a delivery.

Checking that a credential works is the job of its target's module (`s3_target`, `dropbox_target`),
which calls `store_credential` once the service has accepted it.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, SecretStr
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from delivery.sealing import seal, unseal
from models.errors import Conflict, InvalidRequest, NotFound
from models.schemas import CredentialView
from models.status import CredentialKind, ExportStatus
from models.tables import Credential, Export, ExportTarget, User

SecretModel = TypeVar("SecretModel", bound=BaseModel)


def _plain(secret: BaseModel) -> str:
    """The secret model as JSON with its SecretStr values revealed (only ever passed to `seal`)."""
    values = {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in secret if v is not None}
    return json.dumps(values)


def hint_of(value: str) -> str:
    """The last four characters, enough to tell two keys apart and too few to matter."""
    return f"...{value[-4:]}" if len(value) > 8 else "..."


def store_credential(session: Session, *, owner: User, kind: CredentialKind, label: str, secret: BaseModel,
                     config: dict, hint: str) -> Credential:
    """Insert a credential with its secret sealed; `Conflict` when the owner already has one of that label."""
    label = label.strip()
    if not label:
        raise InvalidRequest("label", "a credential needs a label")
    if session.exec(select(Credential).where(Credential.owner_id == owner.id, Credential.label == label)).first():
        raise Conflict(f"you already have a credential labelled {label!r}")
    credential = Credential(owner_id=owner.id, kind=kind, label=label, hint=hint, config=config, sealed=seal(_plain(secret)))
    session.add(credential)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"you already have a credential labelled {label!r}") from None
    return credential


def credential_view(credential: Credential) -> CredentialView:
    """What the owner may see of a credential."""
    return CredentialView(id=credential.id, kind=credential.kind, label=credential.label, hint=credential.hint,
                          config=credential.config, created_at=credential.created_at)


def list_credentials(session: Session, *, owner: User) -> list[CredentialView]:
    """The owner's credentials, oldest first, without secrets."""
    rows = session.exec(select(Credential).where(Credential.owner_id == owner.id).order_by(Credential.id)).all()
    return [credential_view(c) for c in rows]


def get_credential(session: Session, *, owner_id: int, credential_id: int | None, kind: CredentialKind,
                   field: str = "credential_id") -> Credential:
    """The owner's credential of `kind`; `InvalidRequest` naming `field` when missing, another's, or another kind."""
    if credential_id is None:
        raise InvalidRequest(field, f"a {kind.value} target needs a credential id (see `geoship credentials list`)")
    credential = session.get(Credential, credential_id)
    if credential is None or credential.owner_id != owner_id:
        raise InvalidRequest(field, f"you have no credential {credential_id}")
    if credential.kind != kind:
        raise InvalidRequest(field, f"credential {credential_id} is a {credential.kind.value} credential, "
                                    f"not {kind.value}")
    return credential


def open_secret(credential: Credential, model: type[SecretModel]) -> SecretModel:
    """The decrypted secret of `credential`, as `model` (whose SecretStr fields keep it out of reprs)."""
    return model.model_validate_json(unseal(credential.sealed))


def remove_credential(session: Session, *, owner: User, credential_id: int) -> None:
    """Delete the owner's credential; refused while an unfinished export still needs it."""
    credential = session.get(Credential, credential_id)
    if credential is None or credential.owner_id != owner.id:
        raise NotFound(f"credential {credential_id} not found")
    in_use = session.exec(
        select(ExportTarget.export_id).join(Export, Export.id == ExportTarget.export_id)
        .where(ExportTarget.credential_id == credential_id, Export.status.in_(ExportStatus.success.earlier()))
    ).first()
    if in_use is not None:
        raise Conflict(f"credential {credential_id} is needed by export {in_use}, which has not finished")
    for target in session.exec(select(ExportTarget).where(ExportTarget.credential_id == credential_id)):
        target.credential_id = None  # finished exports keep their history, not a dangling key
        session.add(target)
    session.delete(credential)
    session.flush()
