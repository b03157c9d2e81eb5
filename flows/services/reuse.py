"""Identical exports reuse their render: an export whose normalised request and inputs match an earlier render of
the same user's is delivered from a copy of that file, without rendering.

The fingerprint of a render covers everything its bytes depend on: the bound tool tree (its leaves name every
scene file, the AOI mask is inside it), the output grid, compression and resampling, the settings that shape the
file (codec level or quality, warp error, tile size, shard size), a format number bumped whenever the renderer's
output for the same request changes, and each source file's signature now (`ray_render.signatures`). A file
that cannot say whether it changed makes the export unreusable. A COG is copied as it is (a hard link, or a
server-side copy); a package is written again with its members renamed (it names its export inside the ZIP),
its COGs' bytes copied, nothing decoded.
"""

from __future__ import annotations

import hashlib
import json

from sqlmodel import Session, select

from delivery.artifacts import ArtifactStore
from models.db import get_engine
from models.rendered import Rendered
from models.settings import get_settings
from models.tables import Export
from models.tooltree import parse_tool_tree
from ray_render.signatures import file_signatures

# Bump when the renderer writes different bytes for the same request (a new overview rule, a new header).
RENDER_FORMAT = 1
# Earlier renders looked at per lookup, newest first: a few, in case the newest file has been removed.
CANDIDATES = 5


def render_fingerprint(*, tool: dict, grid: dict, compression: str, resampling: str) -> str | None:
    """The fingerprint of rendering `tool` onto `grid` now, or None when an input cannot tell whether it changed."""
    settings = get_settings()
    inputs = file_signatures([band.uri for scene in parse_tool_tree(tool).scenes() for band in scene.bands])
    if any(signature is None for signature in inputs.values()):
        return None
    shaping = {"deflate": settings.deflate_level, "zstd": settings.zstd_level}.get(compression, settings.lossy_quality)
    request = {"format": RENDER_FORMAT, "tool": tool, "grid": grid, "compression": compression, "codec": shaping,
               "resampling": resampling, "warp_error": settings.warp_error_threshold, "tile_size": settings.tile_size,
               "shard_max_bytes": settings.shard_max_bytes,
               "inputs": sorted(inputs.items())}
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def reusable_render(store: ArtifactStore, *, owner_id: int, fingerprint: str | None,
                    exclude: int | None = None) -> tuple[int, Rendered] | None:
    """The newest earlier export of the owner rendered with `fingerprint` whose files are all still in the store,
    with what it rendered; None when there is none. (The store is asked after the database's transaction ends.)"""
    if fingerprint is None:
        return None
    # `artifact`, not `rendered`: the JSON column holds JSON null, which is not SQL NULL, until the render is done
    # (an identical export still rendering is no candidate).
    query = (select(Export.id, Export.rendered)
             .where(Export.owner_id == owner_id, Export.render_fingerprint == fingerprint, Export.artifact.is_not(None))
             .order_by(Export.id.desc()).limit(CANDIDATES))
    if exclude is not None:
        query = query.where(Export.id != exclude)
    with Session(get_engine()) as session:
        candidates = [(export_id, Rendered.model_validate(rendered)) for export_id, rendered in session.exec(query)
                      if rendered is not None]
    for export_id, rendered in candidates:
        if (rendered.stac_uri and store.size(rendered.uri) == rendered.bytes
                and all(store.size(uri) is not None for uri in (rendered.stac_uri, rendered.quicklook_uri) if uri)):
            return export_id, rendered
    return None


def reusable_for_plan(store: ArtifactStore, *, owner_id: int, tool: dict, grid: dict, compression: str,
                      resampling: str) -> int | None:
    """The earlier export whose render a planned export would reuse (for its estimate), or None."""
    fingerprint = render_fingerprint(tool=tool, grid=grid, compression=compression, resampling=resampling)
    found = reusable_render(store, owner_id=owner_id, fingerprint=fingerprint)
    return found[0] if found else None
