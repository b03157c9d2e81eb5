"""Bind a user's tool tree to what it reads: each leaf's project or scene found, authorised and filled in.

A user's leaves name a project (`"project": "naip-2014"` or an id) or a scene (`"scene": 12`); a project leaf
that names none reads the request's project, and a saved tool's leaf with a `slot` reads the project the
export binds to it (`"bind": {"before": "naip-2014"}`). Binding writes each leaf's scenes into the tree (the form stored
on the export row), so the renderer reads exactly what was authorised at request time. Nothing is written to
the database.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from models.catalogue import find_project, find_scene, project_scenes, scene_source, unreadable_scenes
from models.errors import Forbidden, InvalidRequest, InvalidToolTree, NotFound
from models.saved_tools import slots_of
from models.tables import Project, Scene, User
from models.tooltree import LEAF_TYPES, check_shape, refuse_bound_fields, walk_json


@dataclass
class BoundTree:
    """A user's tree with its leaves bound, and the projects and scenes they read."""

    data: dict[str, Any]
    projects: dict[int, Project] = field(default_factory=dict)
    # Every scene read, once, in the order first read; and each project's scenes in mosaic order.
    scenes: dict[int, Scene] = field(default_factory=dict)
    project_scenes: dict[int, list[Scene]] = field(default_factory=dict)

    def first_project(self) -> Project | None:
        return next(iter(self.projects.values()), None)


def readable_project_scenes(session: Session, owner: User, project: Project, where: str = "") -> list[Scene]:
    """The project's scenes in mosaic order, every one readable by `owner`; the errors name `where` (a leaf's
    path) when given."""
    scenes = project_scenes(session, project=project)
    if not scenes:
        raise InvalidRequest(f"{where}.project" if where else "project", f"project {project.name!r} has no scenes")
    hidden = unreadable_scenes(session, user=owner, scenes=scenes)
    if hidden:
        names = ", ".join(f"{s.name} (id {s.id})" for s in hidden)
        prefix = f"{where}: " if where else ""
        raise Forbidden(f"{prefix}you may not read scene(s) {names} of project {project.name!r}; ask their owner "
                        f"to share them")
    return scenes


def _reference(node: dict[str, Any], key: str, path: str, default=None) -> Any:
    ref = node.get(key, default)
    if isinstance(ref, bool) or not isinstance(ref, str | int) or ref == "":
        what = "a project name or id" if key == "project" else "a scene id"
        if ref is None and key == "project":
            raise InvalidToolTree(f"{path}.project", "this leaf names no project and the request gives none: set "
                                                     '"project" on the leaf or on the request')
        raise InvalidToolTree(f"{path}.{key}", f"must be {what}, not {ref!r}")
    if key == "scene":
        if not (isinstance(ref, int) or ref.isdigit()) or not 0 < int(ref) < 2**63:
            raise InvalidToolTree(f"{path}.scene", f"must be a scene id (a positive whole number), not {ref!r}")
        return int(ref)
    return ref


def _slot_project(node: dict[str, Any], path: str, slots: dict[str, str | int]) -> tuple[str | int, str]:
    """(the project bound to a leaf's slot, where errors about it point: `bind.<slot>`)."""
    slot = node["slot"]
    if not isinstance(slot, str) or node.get("project") is not None:
        raise InvalidToolTree(f"{path}.slot", "a leaf names its project or leaves a slot open, not both")
    if slot not in slots:
        raise InvalidRequest(f"bind.{slot}", f"slot {slot!r} is not bound to a project; bind it, e.g. "
                                             f"--bind {slot}=PROJECT or \"bind\": {{\"{slot}\": \"PROJECT\"}}")
    ref = slots[slot]
    if isinstance(ref, bool) or not isinstance(ref, str | int) or ref == "":
        raise InvalidRequest(f"bind.{slot}", f"must be a project name or id, not {ref!r}")
    return ref, f"bind.{slot}"


def check_bindings(data: dict[str, Any], slots: dict[str, Any] | None) -> None:
    """Refuse bindings of slots the tree does not have, listing those it has."""
    have = slots_of(data)
    for name in slots or {}:
        if name not in have:
            listed = ", ".join(have) or "none"
            raise InvalidRequest(f"bind.{name}", f"the tool has no slot {name!r} (its slots: {listed})")


def bind_tool_tree(session: Session, *, owner: User, data: Any, default_project: str | int | None = None,
                   slots: dict[str, str | int] | None = None) -> BoundTree:
    """`data` with every leaf bound to the scenes it reads, each authorised for `owner`.

    Raises `InvalidToolTree` for a malformed tree or leaf, `InvalidRequest` for a slot left unbound (or bound
    to no project), `NotFound` (naming the leaf or slot) for a project or scene the owner may not know of, and
    `Forbidden` for a project with scenes they may not read.
    """
    check_shape(data)
    check_bindings(data, slots)
    data = copy.deepcopy(data)
    bound = BoundTree(data)
    for path, node in walk_json(data):
        if node.get("type") not in LEAF_TYPES:
            continue
        refuse_bound_fields(node, path)
        try:
            where = path
            if node["type"] == "project":
                if node.get("slot") is not None:
                    ref, where = _slot_project(node, path, slots or {})
                else:
                    ref = _reference(node, "project", path, default_project)
                project = find_project(session, user=owner, ref=ref)
                if project.id not in bound.projects:
                    bound.projects[project.id] = project
                    bound.project_scenes[project.id] = readable_project_scenes(session, owner, project, where)
                scenes = bound.project_scenes[project.id]
                node.update(project=ref, project_id=project.id)
            else:
                scene = find_scene(session, user=owner, scene_id=_reference(node, "scene", path))
                scenes = [scene]
            for scene in scenes:
                bound.scenes.setdefault(scene.id, scene)
        except NotFound as exc:
            raise NotFound(f"{where}: {exc}") from None
        node["scenes"] = [scene_source(s).model_dump(mode="json") for s in scenes]
    return bound


def leaf_default_resampling(data: dict[str, Any], default: str) -> None:
    """Give every leaf without a `resampling` one, in place: `nearest` under a mask_by's `by` (QA bit fields and
    classes must not be interpolated), else `default`."""
    for path, node in walk_json(data):
        if node.get("type") in LEAF_TYPES and node.get("resampling") is None:
            node["resampling"] = "nearest" if _under_a_mask_band(path) else default


def _under_a_mask_band(path: str) -> bool:
    parts = path.split(".")
    return any(part == "by" and parts[i - 1] != "inputs" for i, part in enumerate(parts) if i > 0)
