"""/api/v1/credentials: add (checked with the service first), list and delete; secrets are write-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import Field

from api.deps import RowId, SessionDep, UserDep
from delivery.credentials import credential_view, list_credentials, remove_credential
from delivery.dropbox_target import add_dropbox_credential
from delivery.s3_target import add_s3_credential
from models.schemas import CredentialView, DropboxCredentialRequest, S3CredentialRequest

router = APIRouter(prefix="/credentials", tags=["credentials"])

CredentialRequest = Annotated[S3CredentialRequest | DropboxCredentialRequest, Field(discriminator="kind")]


@router.post("", status_code=201, response_model=CredentialView, summary="Add a credential")
def add_credential(body: Annotated[CredentialRequest, Body()], session: SessionDep, user: UserDep) -> CredentialView:
    """Check the credential with its service (S3: the bucket answers and a probe object can be written and
    deleted; Dropbox: the token works), then store it encrypted. The secret is never returned."""
    if isinstance(body, S3CredentialRequest):
        credential = add_s3_credential(session, owner=user, label=body.label, secret=body.secret(), config=body.config(),
                                       bucket=body.bucket, prefix=body.prefix)
    else:
        credential = add_dropbox_credential(session, owner=user, label=body.label, secret=body.secret())
    return credential_view(credential)


@router.get("", response_model=list[CredentialView], summary="List your credentials")
def credentials(session: SessionDep, user: UserDep) -> list[CredentialView]:
    """Id, kind, label, a hint and the non-secret settings of each of your credentials."""
    return list_credentials(session, owner=user)


@router.delete("/{credential_id}", status_code=204, summary="Delete a credential")
def delete_credential(credential_id: RowId, session: SessionDep, user: UserDep) -> Response:
    """Delete one of your credentials; refused (409) while an unfinished export needs it."""
    remove_credential(session, owner=user, credential_id=credential_id)
    return Response(status_code=204)
