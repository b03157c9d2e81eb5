"""Users and their API tokens. A token is shown once, when made; the database keeps only its SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, select

from models.errors import Conflict, InvalidRequest
from models.tables import User

TOKEN_PREFIX = "gs_"


def hash_api_token(token: str) -> str:
    """What the database stores to find a user by token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: Session, user: User) -> str:
    """A new API token for `user`, replacing any earlier one; the only time the token is seen."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.token_hash = hash_api_token(token)
    session.add(user)
    session.flush()
    return token


def create_user(session: Session, *, name: str) -> tuple[User, str]:
    """A new user and their first API token."""
    name = name.strip()
    if not name:
        raise InvalidRequest("name", "a user needs a non-empty name")
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name)
    session.add(user)
    session.flush()
    return user, issue_api_token(session, user)


def user_for_token(session: Session, token: str) -> User | None:
    """The user whose API token this is, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.exec(select(User).where(User.token_hash == hash_api_token(token))).first()
