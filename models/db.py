"""Database engine and sessions, created lazily from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, create_engine

from models import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from models.settings import get_settings


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout so pollers and writers can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def connection_lost(exc: DBAPIError) -> bool:
    """Whether a database error means the connection was lost or never made (a restart, a failover) rather than
    that the statement was refused. Then the transaction did not commit and the same work may be tried again.

    Not only OperationalError: a connection closed under a statement surfaces as the driver's InterfaceError
    (psycopg2) or ProgrammingError (SQLite), which SQLAlchemy marks `connection_invalidated`.
    """
    return exc.connection_invalidated or "connection" in str(exc.orig).lower()


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database cannot serve us for now (unreachable, restarting, a lock held too
    long, no pooled connection free) rather than that it refused what we asked: asking again later may work."""
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and connection_lost(exc)


def unavailable_reason(exc: SQLAlchemyError) -> str:
    """The driver's own first line on why the database is unavailable: never the statement or its parameters
    (SQLAlchemy's message holds both), nor the URL."""
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


@lru_cache
def get_engine() -> Engine:
    """The process's engine, built on first use: migrated when it is the embedded default (or
    GEOSHIP_AUTO_MIGRATE is set), else checked to be at the newest migration."""
    from models.migrate import require_current, upgrade_if_behind

    settings = get_settings()
    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    auto = settings.auto_migrate if settings.auto_migrate is not None else settings.database_url is None
    if auto:
        upgrade_if_behind(engine)
    else:
        require_current(engine)
    return engine


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
