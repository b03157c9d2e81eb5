"""Saved tools: tool trees users save under a name and export for any project, their own or shared with them.

A saved tree is stored as its owner wrote it: leaves name a project (`"project": "naip-2014"`) or leave a
`slot` open (`"slot": "before"`), and are bound only at export time (`flows.services.binding`), so a tool keeps
working as projects gain scenes. Saving checks the whole tree as the renderer will (every node, band name and
limit), on stand-in scenes that make exactly the bands each leaf reads.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, select

from models.errors import Conflict, InvalidRequest, InvalidToolTree, NotFound
from models.schemas import TOOL_NAMES, ToolView
from models.tables import SavedTool, ToolShare, User
from models.timestamps import utcnow
from models.tooltree import LEAF_TYPES, check_shape, parse_tool_tree, refuse_bound_fields, split_output, walk_json

# A saved tool's name: what users type after --tool. Names of the built-in tools are taken.
TOOL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RESERVED_NAMES = frozenset({*TOOL_NAMES, "schema"})
MAX_DESCRIPTION = 2000


def check_tool_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not re.match(TOOL_NAME, name):
        raise InvalidRequest(field, f"{name!r} is not a tool name: a letter or digit, then letters, digits, '.', '_' "
                                    f"or '-' (64 at most)")
    if name in RESERVED_NAMES:
        raise InvalidRequest(field, f"{name!r} is a built-in tool's name; choose another")
    return name


def slots_of(tree: dict[str, Any]) -> list[str]:
    """The open slots of a (JSON) tree, in the order its leaves read them, each once."""
    found: list[str] = []
    for _, node in walk_json(tree):
        slot = node.get("slot")
        if node.get("type") == "project" and isinstance(slot, str) and slot not in found:
            found.append(slot)
    return found


def check_saved_tree(tree: Any) -> list[str]:
    """Refuse a tree that could not be exported whatever its slots are bound to; returns its slots.

    Each leaf is given a stand-in scene with exactly the bands it reads, and the whole tree is parsed as an
    export's would be, so a wrong band name between nodes, an unknown operator or a radius past its limit is
    refused now, naming the node, rather than at every export.
    """
    check_shape(tree)
    stand_in = copy.deepcopy(tree)
    for path, node in walk_json(stand_in):
        if node.get("type") not in LEAF_TYPES:
            continue
        refuse_bound_fields(node, path)
        if node.get("slot") is not None and node.get("project") is not None:
            raise InvalidToolTree(f"{path}.slot", "a leaf names its project or leaves a slot open, not both")
        if node.get("slot") is not None and node["type"] != "project":
            raise InvalidToolTree(f"{path}.slot", "only project leaves have slots")
        bands = node.get("bands")
        names = [b for b in bands if isinstance(b, str)] if isinstance(bands, list) else []
        node["scenes"] = [{"name": "stand-in", "crs": "EPSG:4326", "dtype": "float32", "resolution": [1, 1],
                           "bounds": [0, 0, 1, 1], "bands": [{"name": b, "uri": "stand-in"} for b in names] or
                           [{"name": "none", "uri": "stand-in"}]}]
    output, node = split_output(stand_in)
    parse_tool_tree({**output, "input": node})
    return slots_of(tree)


def _readable(user: User):
    shared = select(ToolShare.tool_id).where(ToolShare.user_id == user.id)
    return select(SavedTool).where(or_(SavedTool.owner_id == user.id, SavedTool.id.in_(shared)))


def create_tool(session: Session, *, owner: User, name: str, tree: Any, description: str = "") -> SavedTool:
    """Save `tree` as `owner`'s tool `name` (checked first); `Conflict` if they have a tool of that name."""
    check_tool_name(name)
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidRequest("description", f"must be text of at most {MAX_DESCRIPTION} characters")
    check_saved_tree(tree)
    existing = session.exec(select(SavedTool).where(SavedTool.owner_id == owner.id, SavedTool.name == name)).first()
    if existing is not None:
        raise Conflict(f"you already have a tool named {name!r}; remove it first or choose another name")
    tool = SavedTool(owner_id=owner.id, name=name, tree=tree, description=description)
    session.add(tool)
    session.flush()
    return tool


def list_tools(session: Session, *, user: User) -> list[SavedTool]:
    """The tools `user` may export: their own, then those shared with them, by name."""
    tools = session.exec(_readable(user)).all()
    return sorted(tools, key=lambda t: (t.owner_id != user.id, t.name, t.id))


def find_tool(session: Session, *, user: User, ref: str, field: str = "tool") -> SavedTool:
    """A tool `user` may export, by `name` (their own first, then one shared with them) or `owner/name`.

    `NotFound` when there is none they may see (a tool of another user that was not shared with them is not
    there for them); `InvalidRequest` when two shared tools carry the name and it needs its owner.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidRequest(field, f"must be a tool name, not {ref!r}")
    owner_name, _, name = ref.rpartition("/")
    query = _readable(user).where(SavedTool.name == name)
    if owner_name:
        query = query.join(User, User.id == SavedTool.owner_id).where(User.name == owner_name)
    found = session.exec(query).all()
    own = [t for t in found if t.owner_id == user.id]
    if own and not owner_name:
        return own[0]
    if len(found) > 1:
        owners = sorted(session.get(User, t.owner_id).name for t in found)
        raise InvalidRequest(field, f"tools named {name!r} are shared with you by {', '.join(owners)}: say whose, "
                                    f"e.g. {owners[0]}/{name}")
    if not found:
        raise NotFound(f"tool {ref!r} not found")
    return found[0]


def own_tool(session: Session, *, owner: User, name: str) -> SavedTool:
    """`owner`'s own tool `name`; `NotFound` otherwise (shared tools cannot be changed by those they are shared with)."""
    tool = session.exec(select(SavedTool).where(SavedTool.owner_id == owner.id, SavedTool.name == name)).first()
    if tool is None:
        raise NotFound(f"you have no tool named {name!r}")
    return tool


def share_tool(session: Session, *, owner: User, name: str, with_user: User) -> SavedTool:
    """Let `with_user` export `owner`'s tool `name` (with projects they may read)."""
    tool = own_tool(session, owner=owner, name=name)
    if with_user.id == owner.id:
        raise InvalidRequest("user", "a tool is always yours to use; share it with someone else")
    if session.get(ToolShare, (tool.id, with_user.id)) is None:
        session.add(ToolShare(tool_id=tool.id, user_id=with_user.id))
        tool.updated_at = utcnow()
        session.add(tool)
        session.flush()
    return tool


def shared_with(session: Session, *, tool: SavedTool) -> list[str]:
    """The names of the users `tool` is shared with."""
    rows = session.exec(select(User.name).join(ToolShare, ToolShare.user_id == User.id)
                        .where(ToolShare.tool_id == tool.id).order_by(User.name)).all()
    return list(rows)


def remove_tool(session: Session, *, owner: User, name: str) -> None:
    """Delete `owner`'s tool `name` and its shares. Exports made with it keep their own copy of the tree."""
    tool = own_tool(session, owner=owner, name=name)
    for share in session.exec(select(ToolShare).where(ToolShare.tool_id == tool.id)).all():
        session.delete(share)
    session.flush()
    session.delete(tool)
    session.flush()


def tool_view(session: Session, tool: SavedTool, viewer: User) -> ToolView:
    """What `viewer` sees of `tool`: its owner also sees who it is shared with."""
    owner = session.get(User, tool.owner_id)
    mine = tool.owner_id == viewer.id
    return ToolView(id=tool.id, name=tool.name, owner=owner.name, ref=tool.name if mine else f"{owner.name}/{tool.name}",
                    description=tool.description, slots=slots_of(tool.tree), tree=tool.tree,
                    shared_with=shared_with(session, tool=tool) if mine else None, created_at=tool.created_at,
                    updated_at=tool.updated_at)
