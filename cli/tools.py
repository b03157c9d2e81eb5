"""`geoship tools`: save tool trees under a name, share them, and export them with `geoship export --tool NAME`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cli.common import acting_user, console, print_json, reports_errors, session_scope
from models.errors import InvalidToolTree

tools_app = typer.Typer(help="Save tool trees and export them by name for any project (--bind fills their slots).")


def read_tree_file(path: Path, field: str) -> dict:
    """A tool tree from a JSON file, or `InvalidToolTree` naming `field` and what is wrong with the file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidToolTree(field, f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidToolTree(field, f"{path} is not valid JSON ({exc})") from None


@tools_app.command("create")
@reports_errors
def tools_create(
    name: str = typer.Argument(..., help="What `geoship export --tool` will take."),
    file: Path = typer.Argument(..., help="The tool tree (JSON); leaves name a project or leave a \"slot\" open."),
    description: str = typer.Option("", "--description", help="What the tool is for."),
) -> None:
    """Save a tool tree under a name (checked whole now, so it exports without surprises)."""
    from models.saved_tools import create_tool, slots_of

    tree = read_tree_file(file, "file")
    with session_scope() as session:
        tool = create_tool(session, owner=acting_user(session), name=name, tree=tree, description=description)
        slots = slots_of(tool.tree)
    console.print(f"saved tool {name}" + (f" with slots {', '.join(slots)}: export it with "
                                          + " ".join(f"--bind {s}=PROJECT" for s in slots) if slots else ""),
                  highlight=False, soft_wrap=True)


@tools_app.command("list")
@reports_errors
def tools_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List your tools and those shared with you."""
    from models.saved_tools import list_tools, tool_view

    with session_scope() as session:
        user = acting_user(session)
        views = [tool_view(session, tool, user) for tool in list_tools(session, user=user)]
    if as_json:
        print_json([v.model_dump(mode="json") for v in views])
        return
    table = Table("tool", "owner", "slots", "description")
    for view in views:
        table.add_row(view.ref, view.owner, ", ".join(view.slots) or "-", view.description)
    console.print(table)


@tools_app.command("show")
@reports_errors
def tools_show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a tool: its slots, who it is shared with, and its tree."""
    from models.saved_tools import find_tool, tool_view

    with session_scope() as session:
        user = acting_user(session)
        view = tool_view(session, find_tool(session, user=user, ref=name, field="name"), user)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    console.print(f"tool {view.ref} (owner {view.owner})", highlight=False)
    if view.description:
        console.print(f"  {view.description}", highlight=False, soft_wrap=True)
    console.print(f"  slots: {', '.join(view.slots) or 'none'}", highlight=False)
    if view.shared_with is not None:
        console.print(f"  shared with: {', '.join(view.shared_with) or 'nobody'}", highlight=False)
    typer.echo(json.dumps(view.tree, indent=2))


@tools_app.command("share")
@reports_errors
def tools_share(name: str, user: str = typer.Argument(..., help="The user to share with.")) -> None:
    """Let another user export your tool (over projects they may read)."""
    from models.catalogue import find_user
    from models.saved_tools import share_tool

    with session_scope() as session:
        owner = acting_user(session)
        share_tool(session, owner=owner, name=name, with_user=find_user(session, name=user))
        owner_name = owner.name
    console.print(f"shared tool {name} with {user}; they export it as --tool {owner_name}/{name}", highlight=False)


@tools_app.command("remove")
@reports_errors
def tools_remove(name: str) -> None:
    """Remove your tool (exports already made with it keep their own copy)."""
    from models.saved_tools import remove_tool

    with session_scope() as session:
        remove_tool(session, owner=acting_user(session), name=name)
    console.print(f"removed tool {name}", highlight=False)


@tools_app.command("schema")
def tools_schema() -> None:
    """Print the JSON Schema of a tool tree (the same as GET /api/v1/tools/schema)."""
    from models.tooltree.schema import tool_tree_schema

    print_json(tool_tree_schema())
