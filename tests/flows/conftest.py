"""Fixtures for orchestration tests: a user with a project of the two small sample scenes (two UTM zones)."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from models.catalogue import add_scene, create_project, get_or_create_user
from ray_render.inspect import inspect_scene


@pytest.fixture
def owner(session):
    user = get_or_create_user(session, name="ada")
    session.commit()
    return user


@pytest.fixture
def project(session, owner, sample_scene_paths):
    project = create_project(session, owner=owner, name="alps")
    for path in sample_scene_paths:
        add_scene(session, owner=owner, project=project, name=path.stem, info=asdict(inspect_scene(path=str(path))))
    session.commit()
    return project
