"""/api/v1/projects and /api/v1/scenes: what the user may read (own, shared with them, or public)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session, select

from api.deps import RowId, SessionDep, UserDep
from models.catalogue import find_project, find_scene, project_scenes, readable_projects, readable_scenes, scene_counts
from models.schemas import ProjectView, SceneView
from models.tables import Project, Scene, User

router = APIRouter(tags=["catalogue"])


def _owners(session: Session, ids: set[int]) -> dict[int, str]:
    return dict(session.exec(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}


def _scene_view(scene: Scene, owners: dict[int, str]) -> SceneView:
    return SceneView(
        id=scene.id, name=scene.name, owner=owners.get(scene.owner_id, "?"), visibility=scene.visibility,
        epsg=scene.epsg, bounds=scene.bounds, footprint=scene.footprint, width=scene.width, height=scene.height,
        resolution=(scene.res_x, scene.res_y), dtype=scene.dtype, nodata=scene.nodata,
        bands=[b["name"] for b in scene.bands], acquired_at=scene.acquired_at,
    )


@router.get("/projects", response_model=list[ProjectView], summary="List the projects you can read")
def projects(session: SessionDep, user: UserDep, limit: Annotated[int, Query(ge=1, le=500)] = 100,
             offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[ProjectView]:
    rows = list(session.exec(readable_projects(session, user=user).order_by(Project.id).offset(offset).limit(limit)).all())
    counts, owners = scene_counts(session, projects=rows), _owners(session, {p.owner_id for p in rows})
    return [ProjectView(id=p.id, name=p.name, owner=owners[p.owner_id], visibility=p.visibility, scene_count=counts[p.id])
            for p in rows]


@router.get("/projects/{project_id}", response_model=ProjectView, summary="A project and its scenes")
def project(project_id: RowId, session: SessionDep, user: UserDep) -> ProjectView:
    """The project with its scenes in mosaic order (404 when you may not read it)."""
    found = find_project(session, user=user, ref=project_id)
    scenes = project_scenes(session, project=found)
    owners = _owners(session, {found.owner_id, *(s.owner_id for s in scenes)})
    return ProjectView(id=found.id, name=found.name, owner=owners[found.owner_id], visibility=found.visibility,
                       scene_count=len(scenes), scenes=[_scene_view(s, owners) for s in scenes])


@router.get("/scenes", response_model=list[SceneView], summary="List the scenes you can read")
def scenes(session: SessionDep, user: UserDep, limit: Annotated[int, Query(ge=1, le=500)] = 100,
           offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[SceneView]:
    rows = list(session.exec(readable_scenes(session, user=user).order_by(Scene.id).offset(offset).limit(limit)).all())
    owners = _owners(session, {s.owner_id for s in rows})
    return [_scene_view(s, owners) for s in rows]


@router.get("/scenes/{scene_id}", response_model=SceneView, summary="A scene")
def scene(scene_id: RowId, session: SessionDep, user: UserDep) -> SceneView:
    found = find_scene(session, user=user, scene_id=scene_id)
    return _scene_view(found, _owners(session, {found.owner_id}))
