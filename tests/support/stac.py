"""Validate STAC JSON offline, with pystac's own validator: its bundled core schemas plus the extension schemas
copied into tests/support/stac_schemas (pystac would fetch those from the network)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pystac.validation import JsonSchemaSTACValidator, validate_dict

SCHEMAS = Path(__file__).parent / "stac_schemas"


@cache
def _extension_schemas() -> dict[str, dict]:
    """Each copied schema by the URI items name it with (`<name>-<version>.json`)."""
    schemas = {}
    for path in SCHEMAS.glob("*.json"):
        name, version = path.stem.rsplit("-", 1)
        schemas[f"https://stac-extensions.github.io/{name}/{version}/schema.json"] = json.loads(path.read_text())
    return schemas


def validate_stac(stac: dict[str, Any]) -> list[str]:
    """Validate an Item or Collection against the core schema and every extension it declares; returns the schema
    URIs it was checked against. Raises pystac's STACValidationError naming what is wrong."""
    unknown = set(stac.get("stac_extensions", [])) - set(_extension_schemas())
    assert not unknown, f"no offline schema for {sorted(unknown)}: copy it into {SCHEMAS}"
    validator = JsonSchemaSTACValidator()
    validator.schema_cache.update(_extension_schemas())
    return validate_dict(stac, validator=validator)
