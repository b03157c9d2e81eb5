"""Catalogue operations on users, projects and scenes (database only, no raster I/O)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, select

from models.errors import Conflict, InvalidRequest, NotFound
from models.tables import Project, ProjectScene, ProjectShare, Scene, SceneShare, User
from models.tooltree import SceneSource


def get_or_create_user(session: Session, *, name: str) -> User:
    """The user called `name`, created when missing."""
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    return user


def find_user(session: Session, *, name: str) -> User:
    """The user called `name`; `NotFound` otherwise."""
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"user {name!r} not found")
    return user


def create_project(session: Session, *, owner: User, name: str, visibility: str = "private") -> Project:
    """A new, empty project; names are unique per owner."""
    if not name.strip():
        raise InvalidRequest("name", "a project needs a non-empty name")
    if session.exec(select(Project).where(Project.owner_id == owner.id, Project.name == name)).first():
        raise Conflict(f"project {name!r} already exists")
    project = Project(name=name, owner_id=owner.id, visibility=visibility)
    session.add(project)
    session.flush()
    return project


def readable_projects(session: Session, *, user: User):
    """Query of the projects `user` may read: own, shared with them, or public."""
    shared = select(ProjectShare.project_id).where(ProjectShare.user_id == user.id)
    return select(Project).where(
        or_(Project.owner_id == user.id, Project.visibility == "public", Project.id.in_(shared))
    )


def readable_scenes(session: Session, *, user: User):
    """Query of the scenes `user` may read: own, shared with them, or public."""
    shared = select(SceneShare.scene_id).where(SceneShare.user_id == user.id)
    return select(Scene).where(or_(Scene.owner_id == user.id, Scene.visibility == "public", Scene.id.in_(shared)))


def unreadable_scenes(session: Session, *, user: User, scenes: list[Scene]) -> list[Scene]:
    """Those of `scenes` that `user` may not read, in the given order."""
    ids = [s.id for s in scenes]
    readable = set(session.exec(readable_scenes(session, user=user).where(Scene.id.in_(ids)).with_only_columns(Scene.id)).all())
    return [s for s in scenes if s.id not in readable]


def find_scene(session: Session, *, user: User, scene_id: int) -> Scene:
    """A scene the user may read; `NotFound` otherwise (they need not learn that it exists)."""
    scene = session.exec(readable_scenes(session, user=user).where(Scene.id == scene_id)).first()
    if scene is None:
        raise NotFound(f"scene {scene_id} not found")
    return scene


def share_project(session: Session, *, owner: User, project: Project, with_user: User) -> int:
    """Share the project, and the owner's scenes in it, read-only with `with_user`; returns the scenes shared."""
    if project.owner_id != owner.id:
        raise NotFound(f"project {project.name!r} not found")
    if session.get(ProjectShare, (project.id, with_user.id)) is None:
        session.add(ProjectShare(project_id=project.id, user_id=with_user.id))
    shared = 0
    for scene in project_scenes(session, project=project):
        if scene.owner_id == owner.id and session.get(SceneShare, (scene.id, with_user.id)) is None:
            session.add(SceneShare(scene_id=scene.id, user_id=with_user.id))
            shared += 1
    session.flush()
    return shared


def find_project(session: Session, *, user: User, ref: str | int) -> Project:
    """A project the user may read, by id or name (own projects first); `NotFound` otherwise."""
    query = readable_projects(session, user=user)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        in_range = 0 < int(ref) < 2**63  # ids are 64-bit; anything else names no project
        project = session.exec(query.where(Project.id == int(ref))).first() if in_range else None
    else:
        candidates = session.exec(query.where(Project.name == ref)).all()
        project = next((p for p in candidates if p.owner_id == user.id), candidates[0] if candidates else None)
    if project is None:
        raise NotFound(f"project {ref!r} not found")
    return project


def scene_counts(session: Session, *, projects: list[Project]) -> dict[int, int]:
    """Number of scenes in each of `projects`, by project id, in one query."""
    rows = session.exec(
        select(ProjectScene.project_id, func.count()).where(ProjectScene.project_id.in_([p.id for p in projects]))
        .group_by(ProjectScene.project_id)
    ).all()
    counts = dict(rows)
    return {p.id: counts.get(p.id, 0) for p in projects}


def project_scenes(session: Session, *, project: Project) -> list[Scene]:
    """The project's scenes in mosaic priority order."""
    rows = session.exec(
        select(Scene).join(ProjectScene, ProjectScene.scene_id == Scene.id)
        .where(ProjectScene.project_id == project.id).order_by(ProjectScene.position)
    ).all()
    return list(rows)


def add_scene(session: Session, *, owner: User, project: Project, name: str, info: dict[str, Any]) -> Scene:
    """Record a scene (from `ray_render.inspect`) and append it to the project's mosaic order."""
    if project.owner_id != owner.id:
        raise NotFound(f"project {project.name!r} not found")
    scene = Scene(name=name, owner_id=owner.id, **info)
    session.add(scene)
    session.flush()
    last = session.exec(select(func.max(ProjectScene.position)).where(ProjectScene.project_id == project.id)).one()
    session.add(ProjectScene(project_id=project.id, scene_id=scene.id, position=(last + 1) if last is not None else 0))
    session.flush()
    return scene


def reorder_scenes(session: Session, *, owner: User, project: Project, scene_names: list[str]) -> list[Scene]:
    """Set the project's mosaic order: `scene_names` lists every scene once, highest priority first."""
    if project.owner_id != owner.id:
        raise NotFound(f"project {project.name!r} not found")
    scenes = {s.name: s for s in project_scenes(session, project=project)}
    if sorted(scene_names) != sorted(scenes):
        raise InvalidRequest("scenes", f"list every scene of {project.name!r} exactly once: {', '.join(scenes)}")
    links = {link.scene_id: link for link in session.exec(select(ProjectScene).where(ProjectScene.project_id == project.id))}
    for position, name in enumerate(scene_names):
        links[scenes[name].id].position = position
        session.add(links[scenes[name].id])
    session.flush()
    return [scenes[name] for name in scene_names]


def scene_source(scene: Scene) -> SceneSource:
    """The renderer's view of a scene, embedded in tool trees."""
    return SceneSource(
        id=scene.id, name=scene.name, crs=scene.crs_wkt, nodata=scene.nodata, dtype=scene.dtype,
        resolution=(scene.res_x, scene.res_y), bounds=tuple(scene.bounds), bands=scene.bands,
        data_area=scene.data_area,
    )
