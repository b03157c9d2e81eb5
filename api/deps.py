"""What endpoints depend on: a database session, and the user behind the request's bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from models.db import session_scope
from models.errors import Unauthorized
from models.tables import User
from models.users import user_for_token

_bearer = HTTPBearer(auto_error=False, description="An API token from `geoship users create NAME`.")


def db_session() -> Iterator[Session]:
    """A session per request: committed when the endpoint returns, rolled back when it raises."""
    with session_scope() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client is never told 201 for a row
# that a failed commit (the database restarting) did not keep, and that failure answers 503 (api/errors.py)
# instead of dropping the connection after the response has begun.
SessionDep = Annotated[Session, Depends(db_session, scope="function")]


def current_user(session: SessionDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    """The authenticated user; 401 without a bearer token or with one we do not know."""
    if credentials is None:
        raise Unauthorized("authentication required: send Authorization: Bearer <API token>")
    user = user_for_token(session, credentials.credentials)
    if user is None:
        raise Unauthorized("the API token is not valid")
    return user


UserDep = Annotated[User, Depends(current_user)]

# Row ids in paths: positive 64-bit integers, so that no id reaches the database out of its range.
MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
