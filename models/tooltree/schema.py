"""The JSON Schema of a tool tree as users write it, generated from the node models (the one registry).

Fields that binding fills in (a leaf's `scenes` and `project_id`) are left out: a user's tree may not set them.
The root may be any node; without an `output` root an export makes float32 (or RGBA for a colour map).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from models.tooltree.sources import BOUND_FIELDS, LEAF_TYPES
from models.tooltree.tree import NODE_TYPES, AnyNode

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@lru_cache(maxsize=1)
def tool_tree_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a user's tool tree."""
    schema = TypeAdapter(AnyNode).json_schema()
    definitions = schema["$defs"]
    for kind in LEAF_TYPES:
        leaf = definitions[NODE_TYPES[kind].__name__]
        for name in BOUND_FIELDS:
            leaf["properties"].pop(name, None)
    for internal in ("SceneSource", "SceneBand"):  # only the bound fields referred to them
        definitions.pop(internal, None)
    return {"$schema": SCHEMA_DIALECT, "title": "geoship tool tree",
            "description": "A typed tree of operations over projects; see the README's \"Tool trees of your own\".",
            **schema}
