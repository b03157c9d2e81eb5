"""/api/v1/tools: tools users save once and export for any project, and the JSON Schema of a tool tree."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import SessionDep, UserDep
from models.catalogue import find_user
from models.saved_tools import create_tool, find_tool, list_tools, remove_tool, share_tool, tool_view
from models.schemas import ToolCreate, ToolShareRequest, ToolView
from models.tooltree.schema import tool_tree_schema

router = APIRouter(prefix="/tools", tags=["tools"])


@router.get("/schema", summary="The JSON Schema of a tool tree")
def schema() -> dict[str, Any]:
    """Every node type and its fields (draft 2020-12), generated from the same models the server validates with."""
    return tool_tree_schema()


@router.post("", response_model=ToolView, status_code=201, summary="Save a tool")
def create(body: ToolCreate, session: SessionDep, user: UserDep) -> ToolView:
    """Save a tool tree under a name. The whole tree is checked now (422 naming the node); 409 if you already have
    a tool of that name."""
    return tool_view(session, create_tool(session, owner=user, name=body.name, tree=body.tree,
                                          description=body.description), user)


@router.get("", response_model=list[ToolView], summary="List the tools you can export")
def tools(session: SessionDep, user: UserDep) -> list[ToolView]:
    """Your tools, then those shared with you."""
    return [tool_view(session, tool, user) for tool in list_tools(session, user=user)]


@router.get("/{ref:path}", response_model=ToolView, summary="A tool")
def tool(ref: str, session: SessionDep, user: UserDep) -> ToolView:
    """A tool by name (yours first) or owner/name; 404 when there is none you may see."""
    return tool_view(session, find_tool(session, user=user, ref=ref, field="name"), user)


@router.post("/{name}/shares", response_model=ToolView, summary="Share a tool")
def share(name: str, body: ToolShareRequest, session: SessionDep, user: UserDep) -> ToolView:
    """Let another user export your tool (over projects they may read)."""
    reader = find_user(session, name=body.user)
    return tool_view(session, share_tool(session, owner=user, name=name, with_user=reader), user)


@router.delete("/{name}", status_code=204, summary="Remove a tool")
def remove(name: str, session: SessionDep, user: UserDep) -> Response:
    """Remove your tool. Exports already made with it keep their own copy of the tree."""
    remove_tool(session, owner=user, name=name)
    return Response(status_code=204)
