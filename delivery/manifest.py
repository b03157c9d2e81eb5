"""The small files every delivery carries beside the deliverable: its STAC (item or collection), its quicklook
PNG and a manifest listing every delivered file with its size and SHA-256, so that a user can check what arrived
without geoship.

The manifest is written once, when the render is published, and stored beside the file in the artifact store
(`export-7.manifest.json`); each target then copies the stored sidecars as they are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from delivery.artifacts import artifact_store
from delivery.names import name_of

MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class Sidecar:
    """A small file delivered beside the deliverable: its name and bytes."""

    name: str
    data: bytes


def manifest_name(export_id: int) -> str:
    return f"export-{export_id}{MANIFEST_SUFFIX}"


def build_manifest(export_id: int, *, deliverable: str, size: int, sha256: str, sidecars: list[Sidecar]) -> Sidecar:
    """The manifest of an export's delivery: the deliverable (its name, size and SHA-256), then each sidecar
    delivered beside it (the STAC, the quicklook)."""
    files = [{"name": deliverable, "bytes": size, "sha256": sha256}]
    files += [{"name": s.name, "bytes": len(s.data), "sha256": hashlib.sha256(s.data).hexdigest()} for s in sidecars]
    body = {"export_id": export_id, "files": files}
    return Sidecar(manifest_name(export_id), (json.dumps(body, indent=2) + "\n").encode())


def read_sidecars(uris: list[str]) -> list[Sidecar]:
    """The stored sidecars at `uris` (the STAC, the manifest), read from the artifact store."""
    store = artifact_store()
    found = []
    for uri in uris:
        size = store.size(uri)
        if size is None:
            raise FileNotFoundError(f"{uri} is missing from the artifact store")
        found.append(Sidecar(name_of(uri), b"".join(store.read(uri, 0, size - 1))))
    return found
