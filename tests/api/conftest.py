"""Fixtures for the HTTP side: an export whose rendered file sits in the local artifact store."""

from __future__ import annotations

import hashlib

import pytest

from delivery.artifacts import artifact_store
from models.tables import Export, User


@pytest.fixture
def export_with_file(session):
    """A finished export of one user with a ~2.3 MB file (several 1 MiB read chunks) in the artifact store."""
    user = User(name="dl")
    session.add(user)
    session.flush()
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={})
    session.add(export)
    session.flush()
    path = artifact_store().staging_path(export.id)
    path.parent.mkdir(parents=True)
    data = bytes(range(256)) * 9000
    path.write_bytes(data)
    export.artifact = str(path)
    export.result = {"render": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    session.add(export)
    session.commit()
    return export, path
