"""Parse JSON into a tool tree, refusing anything malformed with the node path and the reason.

The shape of the JSON is checked first, without recursion (depth, node count, nesting), so a hostile tree is
refused before pydantic walks it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from models.errors import InvalidToolTree
from models.tooltree.base import MAX_DEPTH, MAX_NODES
from models.tooltree.nodes import Output
from models.tooltree.tree import PASS_THROUGH_TYPES, ToolTree

# Keys under which a node holds child nodes: one node, or a map of named nodes.
CHILD_KEYS = ("input", "by")
CHILD_MAPS = ("inputs",)
# Deepest nesting of JSON objects and arrays anywhere in a tree (nodes, expressions, geometries).
MAX_NESTING = 192
# The output of a user's tree that gives no `output` root: float32 with a nodata value, or RGBA for a colour map.
DEFAULT_OUTPUT = {"type": "output", "dtype": "float32", "nodata": -9999.0}
RGBA_OUTPUT = {"type": "output", "dtype": "uint8", "nodata": None}


def child_nodes(node: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path suffix, child) for each child node of a JSON node, in a fixed order."""
    found = [(key, node[key]) for key in CHILD_KEYS if isinstance(node.get(key), dict)]
    for key in CHILD_MAPS:
        if isinstance(node.get(key), dict):
            found.extend((f"{key}.{name}", child) for name, child in node[key].items() if isinstance(child, dict))
    return found


def walk_json(data: dict[str, Any], path: str = "tool"):
    """(path, node) for every node of a JSON tree, depth first, without recursion; stops at the size limits."""
    pending = [(path, data, 1)]
    count = 0
    while pending:
        path, node, depth = pending.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise InvalidToolTree(path, f"tree is deeper than {MAX_DEPTH} nodes")
        if count > MAX_NODES:
            raise InvalidToolTree("tool", f"tree has more than {MAX_NODES} nodes")
        yield path, node
        pending.extend((f"{path}.{suffix}", child, depth + 1) for suffix, child in reversed(child_nodes(node)))


def _nesting(data: Any) -> int:
    """How deeply JSON objects and arrays nest in `data`, counted without recursion (stops past the limit)."""
    deepest, pending = 0, [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                break
            values = item.values() if isinstance(item, dict) else item
            pending.extend((v, depth + 1) for v in values if isinstance(v, dict | list))
    return deepest


def check_shape(data: Any) -> None:
    """Refuse JSON that is not an object, nests too deeply, or has too many or too deeply chained nodes."""
    if not isinstance(data, dict):
        raise InvalidToolTree("tool", f"a tool tree must be a JSON object, not {type(data).__name__}")
    if _nesting(data) > MAX_NESTING:
        raise InvalidToolTree("tool", f"tree nests objects more than {MAX_NESTING} levels deep")
    for _ in walk_json(data):
        pass


def _makes_colours(data: Any) -> bool:
    """Whether a user's tree (JSON) ends in a colour map, looking through identity and mask nodes."""
    while isinstance(data, dict) and data.get("type") in PASS_THROUGH_TYPES:
        data = data.get("input")
    return isinstance(data, dict) and data.get("type") == "colormap"


def split_output(data: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(the output node's settings, the node under it) of a user's tree, whether or not it gives an `output`
    root: without one, float32 with nodata -9999, or RGBA uint8 for a colour map."""
    output = dict(RGBA_OUTPUT if _makes_colours(data) else DEFAULT_OUTPUT)
    if data.get("type") != "output":
        return output, data
    output.update({k: v for k, v in data.items() if k != "input"})
    if not isinstance(data.get("input"), dict):
        raise InvalidToolTree("tool.input", "the output node needs an input node")
    return output, data["input"]


def _location(error: dict[str, Any]) -> str:
    return ".".join(["tool", *(str(p) for p in error["loc"] if not str(p).startswith("function-"))])


def _message(error: dict[str, Any]) -> str:
    return error["msg"].removeprefix("Value error, ")


def parse_tool_tree(data: Any) -> ToolTree:
    """Validate JSON-like `data` as a tool tree, or raise `InvalidToolTree` naming the node and the problem."""
    check_shape(data)
    if data.get("type") != "output":
        raise InvalidToolTree("tool.type", f"the root node must be 'output', not {data.get('type')!r}")
    try:
        return ToolTree(root=Output.model_validate(data))
    except ValidationError as exc:
        errors = exc.errors()
        if len(errors) == 1:
            location = _location(errors[0]).removesuffix(".root") if errors[0]["loc"] else "tool"
            raise InvalidToolTree(location, _message(errors[0])) from None
        reasons = "; ".join(f"{_location(e)}: {_message(e)}" for e in errors[:5])
        raise InvalidToolTree("tool", reasons) from None
