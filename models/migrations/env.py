"""Alembic environment: runs on a connection handed over by `models.migrate` (no alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from models import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
