"""Leaves bound to a small scene, for building trees in the schema tests."""

from __future__ import annotations

SCENE = {
    "id": 1, "name": "s1", "crs": "EPSG:32618", "dtype": "uint16", "nodata": 0, "resolution": [10, 10],
    "bounds": [0, 0, 100, 100],
    "bands": [{"name": n, "uri": "/data/s1.tif", "index": i} for i, n in enumerate(["red", "green", "blue", "nir", "qa"], 1)],
}


def leaf(project: str = "p", bands=("red", "nir"), **fields) -> dict:
    """A project leaf as stored: named, and bound to its scenes."""
    return {"type": "project", "project": project, "bands": list(bands), "scenes": [SCENE], **fields}


def output(node: dict, **fields) -> dict:
    return {"type": "output", "dtype": "float32", "nodata": -9999, "input": node, **fields}
