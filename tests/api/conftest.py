"""Fixtures for the HTTP side: API users with their clients and projects, and an export whose rendered file
sits in the local artifact store."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from delivery.artifacts import artifact_store
from models.tables import Export, User
from tests.support.rendered import rendered_record


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
    export.rendered = rendered_record(path)
    session.add(export)
    session.commit()
    return export, path


@dataclass
class ApiUser:
    """A user with an API token and a TestClient that sends it."""

    user: User
    token: str
    client: TestClient


@pytest.fixture
def app():
    return create_app()


@pytest.fixture
def people(session, app, sample_scene_paths):
    """Two users: ada owns project 'alps' (the two small sample scenes); bob owns a private project 'bobs' of one
    scene and a public project 'open' of another. Returns {"ada": ApiUser, "bob": ApiUser}."""
    from models.catalogue import add_scene, create_project
    from models.users import create_user
    from ray_render.inspect import inspect_scene

    made = {}
    for name in ("ada", "bob"):
        user, token = create_user(session, name=name)
        made[name] = ApiUser(user, token, TestClient(app, headers={"Authorization": f"Bearer {token}"}))
    alps = create_project(session, owner=made["ada"].user, name="alps")
    for path in sample_scene_paths:
        add_scene(session, owner=made["ada"].user, project=alps, name=path.stem, info=asdict(inspect_scene(path=str(path))))
    bobs = create_project(session, owner=made["bob"].user, name="bobs")
    add_scene(session, owner=made["bob"].user, project=bobs, name="bob-west",
              info=asdict(inspect_scene(path=str(sample_scene_paths[0]))))
    public = create_project(session, owner=made["bob"].user, name="open", visibility="public")
    scene = add_scene(session, owner=made["bob"].user, project=public, name="bob-east",
                      info=asdict(inspect_scene(path=str(sample_scene_paths[1]))))
    scene.visibility = "public"
    session.add(scene)
    session.commit()
    return made
