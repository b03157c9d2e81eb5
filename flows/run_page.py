"""The export's Prefect run page as the export's page: besides the progress bar (`flows.progress`), the quality
summary once rendered, then a link per delivered target, a table of the targets and the quicklook.

Artifacts only describe: nothing reads them back, and none carries a secret (target results never hold one).
"""

from __future__ import annotations

from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from sqlmodel import Session

from flows.services.views import export_view
from models.db import get_engine
from models.rendered import Rendered
from models.schemas import TargetView
from models.status import TargetKind
from models.tables import Export


def publish_quality(export_id: int, rendered: Rendered) -> None:
    """A markdown artifact of what the render holds: coverage of the area of interest and each band's values."""
    quality = rendered.quality
    if quality is None:
        return
    rows = "\n".join(f"| {b.name} | {_number(b.minimum)} | {_number(b.maximum)} | {_number(b.mean)} |"
                     for b in quality.bands)
    create_markdown_artifact(key=f"export-{export_id}-quality", description="What the export holds", markdown=(
        f"**Export {export_id}**: {rendered.width} x {rendered.height} px, {rendered.bytes:,} bytes\n\n"
        f"- valid pixels: {quality.valid_pixels:,} of {quality.aoi_pixels:,} inside the area of interest "
        f"({quality.valid_share_of_aoi:.1%})\n"
        f"- nodata: {quality.nodata_share:.1%} of the whole grid ({quality.pixels:,} px)\n\n"
        f"| band | minimum | maximum | mean |\n|---|---|---|---|\n{rows}\n\n"
        "Counted on the overview closest to 1,024 px: exact for outputs no larger, estimates above."))


def publish_delivery(export_id: int) -> None:
    """A link artifact per delivered target, a table of every target, and the quicklook when a link serves it."""
    with Session(get_engine()) as session:
        view = export_view(session, session.get(Export, export_id))
    for position, target in enumerate(view.targets):
        link = _link_of(target)
        if link is not None:
            create_link_artifact(key=f"export-{export_id}-target-{position}", link=link,
                                 link_text=f"{target.kind.value}: {link}", description=f"target {position}")
    create_table_artifact(key=f"export-{export_id}-targets", description="Where the export went", table=[
        {"target": position, "kind": t.kind.value, "status": t.status.value, "where": _link_of(t) or "",
         "bytes": (t.result or {}).get("bytes"), "sha256": (t.result or {}).get("sha256"), "error": t.error or ""}
        for position, t in enumerate(view.targets)])
    quicklook = next((url for t in view.targets for url in (t.result or {}).get("sidecar_urls", [])
                      if url.endswith(".png")), None)
    if quicklook is not None:
        create_image_artifact(key=f"export-{export_id}-quicklook", image_url=quicklook, description="Quicklook")


def _link_of(target: TargetView) -> str | None:
    """Where a delivered target can be opened: the download URL, the s3:// URI, the Dropbox folder on the web."""
    result = target.result or {}
    if target.kind == TargetKind.dropbox and result.get("path"):
        return "https://www.dropbox.com/home" + result["path"].rsplit("/", 1)[0]
    return result.get("url")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
