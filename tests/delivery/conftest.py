"""Fixtures for delivery tests: a user, and a rendered file in the artifact store to deliver."""

from __future__ import annotations

import hashlib

import pytest

from delivery.artifacts import artifact_store
from delivery.base import Artifact
from delivery.manifest import Sidecar, build_manifest
from models.tables import Export, ExportTarget, User
from tests.support.rendered import rendered_record


@pytest.fixture
def user(session) -> User:
    user = User(name="grace")
    session.add(user)
    session.commit()
    return user


@pytest.fixture
def make_artifact(session, user):
    """`make_artifact(size)`: an export of `user` with a file of `size` pseudo-random bytes in the artifact store
    (`with_sidecars`: and its STAC and manifest beside it)."""

    def factory(size: int, seed: int = 1, with_sidecars: bool = False) -> Artifact:
        export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={})
        session.add(export)
        session.flush()
        data = hashlib.shake_256(f"{seed}".encode()).digest(size) if size else b""
        path = artifact_store().staging_path(export.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        export.artifact = str(path)
        export.rendered = rendered_record(path)
        session.add(export)
        session.commit()
        sidecars = ()
        if with_sidecars:  # as the export flow stores them: a STAC item and the manifest
            stac = Sidecar(f"export-{export.id}.stac.json", b'{"type": "Feature"}')
            manifest = build_manifest(export.id, deliverable=path.name, size=size, sha256=sha256, sidecars=[stac])
            sidecars = tuple(artifact_store().put_sidecar(export.id, s.name, s.data) for s in (stac, manifest))
        return Artifact(export_id=export.id, uri=str(path), bytes=size, sha256=sha256, sidecar_uris=sidecars)

    return factory


@pytest.fixture
def make_target(session):
    """`make_target(artifact, kind, config, credential_id)`: a target row of the artifact's export."""

    def factory(artifact: Artifact, kind: str, config: dict, credential_id: int | None = None) -> ExportTarget:
        target = ExportTarget(export_id=artifact.export_id, kind=kind, config=config, credential_id=credential_id)
        session.add(target)
        session.commit()
        return target

    return factory
