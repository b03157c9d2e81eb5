"""The export flow: render on Ray, then one delivery subflow per target; hooks write the outcome."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_flow_run
from sqlmodel import Session, select

from delivery.artifacts import ArtifactStore, artifact_store, read_whole
from delivery.base import Artifact
from delivery.manifest import Sidecar, build_manifest
from delivery.names import name_of
from delivery.registry import DELIVERIES
from flows.capacity import render_slot
from flows.heartbeat import heartbeat, without_prefect_heartbeats
from flows.hooks import mark_export_crashed, mark_export_failed, mark_export_finished
from flows.notify import announce
from flows.progress import ProgressReporter
from flows.run_page import publish_delivery, publish_quality
from flows.services.logbook import note
from flows.services.reuse import render_fingerprint, reusable_render
from flows.services.status import advance_export, claim_export, set_export_fields, set_target_status
from flows.services.submission import create_export
from flows.starting import start_next
from models.db import get_engine
from models.errors import Conflict, DeliveryError, InvalidRequest, NotFound
from models.rendered import Rendered, rendered_of
from models.schemas import ExportRequest
from models.settings import get_settings
from models.status import ExportStatus, TargetStatus
from models.tables import Export, ExportTarget, Scene, User
from models.timestamps import utcnow
from models.tooltree import parse_tool_tree
from ray_render.cluster import ensure_ray
from ray_render.grid import OutputGrid
from ray_render.packaging import rename_package, renamed_text
from ray_render.product import render_product
from ray_render.render import RenderOptions
from ray_render.shards import plan_shards
from ray_render.stac import renamed_item
from ray_render.upload import S3Output
from ray_render.writer import CogOptions

# The export's final status is written by these hooks, whichever way its flow run ends.
STATUS_HOOKS = dict(
    on_completion=[mark_export_finished], on_failure=[mark_export_failed], on_crashed=[mark_export_crashed],
    on_cancellation=[mark_export_failed],
)


class DeliveryFailed(DeliveryError):
    """One or more targets of an export could not be delivered."""


@task(name="mark-status")
def mark_status(export_id: int, status: ExportStatus) -> None:
    """Move the export forward to `status`; refuses to move it backwards or out of a final status, or when the
    export no longer belongs to this run (the reconciler gave up on it)."""
    if not advance_export(export_id, status, run=str(current_flow_run.id)):
        raise Conflict(f"export {export_id} cannot move to {status}: it is no longer in an earlier status")
    announce(export_id)


@task(name="render-export")
def render_export(export_id: int, pool_size: int) -> Rendered:
    """Render the export's tool tree with `pool_size` tile actors into its deliverable in the artifact store;
    returns what was rendered."""
    settings = get_settings()
    with Session(get_engine()) as session:
        export = session.get(Export, export_id)
    tree = parse_tool_tree(export.tool)
    grid = OutputGrid.from_dict(export.grid)
    ensure_ray(settings.ray_address, settings.ray_num_cpus)
    options = RenderOptions(
        tile_size=settings.tile_size, pool_size=pool_size,
        in_flight_per_actor=settings.tiles_in_flight_per_actor, resampling=export.resampling,
        gdal_cache_mb=settings.gdal_cache_mb, warp_error_threshold=settings.warp_error_threshold,
        cog=CogOptions(compress=export.compression.upper(), quality=settings.lossy_quality,
                       level={"deflate": settings.deflate_level, "zstd": settings.zstd_level}.get(export.compression)),
        label=f"export-{export_id}",
    )
    logger = get_run_logger()
    logger.info("export %s: rendering %s x %s px in %s with %s px tiles", export_id, grid.width, grid.height,
                grid.crs, options.tile_size)
    note(export_id, f"rendering {grid.width} x {grid.height} px in {grid.crs} with {pool_size} tile actor(s)")
    store = artifact_store()
    windows = plan_shards(grid, tree.root, options.tile_size, settings.shard_max_bytes)
    location = store.upload_location(export_id, ".zip" if windows else ".tif")  # a package is a ZIP
    upload = None if location is None else S3Output(location.bucket, location.key, location.endpoint_url,
                                                    settings.s3_part_size)
    with ProgressReporter(export_id) as progress:
        product = render_product(tree, grid, store.staging_path(export_id), options, shard_windows=windows,
                                 upload=upload, acquired=_acquired(tree), created=utcnow(), on_progress=progress)
    if upload is not None and product.uri == upload.uri:  # the actors uploaded it themselves
        uri = store.adopt(export_id, product.uri)
    else:
        uri = store.publish(export_id, Path(product.uri), product.sha256)
    rendered = _store_beside(export_id, store, uri, product, product.stac, product.quicklook)
    logger.info("export %s: wrote %s (%s bytes, %s tiles, %s shard(s)) in %.1f s", export_id, uri, rendered.bytes,
                rendered.tiles, len(rendered.shards) or 1, rendered.seconds)
    note(export_id, f"rendered {name_of(uri)}: {rendered.bytes:,} bytes, {rendered.tiles} tiles, "
                    f"{len(rendered.shards) or 1} file(s), in {rendered.seconds:.1f} s; sha256 {rendered.sha256}")
    set_export_fields(export_id, artifact=uri, rendered=rendered.model_dump(mode="json"))
    return rendered


def _store_beside(export_id: int, store: ArtifactStore, uri: str, rendered: Rendered, stac: dict,
                  quicklook: bytes | None) -> Rendered:
    """Store the STAC item or collection, the quicklook and the manifest beside the deliverable at `uri`; returns
    `rendered` as published."""
    stac_file = Sidecar(f"export-{export_id}.stac.json", json.dumps(stac, indent=2).encode())
    picture = Sidecar(f"export-{export_id}.png", quicklook) if quicklook else None
    sidecars = [stac_file, *([picture] if picture else [])]
    manifest = build_manifest(export_id, deliverable=name_of(uri), size=rendered.bytes, sha256=rendered.sha256,
                              sidecars=sidecars)
    stored = {s.name: store.put_sidecar(export_id, s.name, s.data) for s in (*sidecars, manifest)}
    return rendered.stored(uri, stored[stac_file.name], stored[manifest.name], stored[picture.name] if picture else None)


@task(name="reuse-render")
def reuse_render(export_id: int) -> Rendered | None:
    """Deliver an identical earlier render of the owner's instead of rendering (`flows.services.reuse`): its COG
    copied under this export's name, its STAC item renamed, its quicklook copied. None when there is none, and
    the export renders. Records the export's fingerprint either way, for the exports after it."""
    store = artifact_store()
    with Session(get_engine()) as session:
        export = session.get(Export, export_id)
    fingerprint = render_fingerprint(tool=export.tool, grid=export.grid, compression=export.compression,
                                     resampling=export.resampling)
    set_export_fields(export_id, render_fingerprint=fingerprint)
    found = reusable_render(store, owner_id=export.owner_id, fingerprint=fingerprint, exclude=export_id)
    if found is None:
        return None
    earlier_id, earlier = found
    started = time.perf_counter()
    try:
        uri, size, sha256, stac = _copy_deliverable(store, export_id, earlier_id, earlier)
        quicklook = read_whole(store, earlier.quicklook_uri) if earlier.quicklook_uri else None
        copy = earlier.model_copy(update={"reused_from": earlier_id, "seconds": round(time.perf_counter() - started, 3),
                                          "bytes": size, "sha256": sha256, "tiles_by_node": {}, "driver_bytes": 0})
        rendered = _store_beside(export_id, store, uri, copy, stac, quicklook)
    except Exception as exc:  # the earlier file went away meanwhile, or the store failed: render instead
        note(export_id, f"could not reuse the render of export {earlier_id} ({exc}); rendering", "warning")
        return None
    note(export_id, f"reused the render of export {earlier_id} (same tool tree, grid and compression, unchanged "
                    f"inputs): {name_of(uri)}, {rendered.bytes:,} bytes, sha256 {rendered.sha256}; nothing rendered")
    get_run_logger().info("export %s: reused the render of export %s", export_id, earlier_id)
    set_export_fields(export_id, artifact=uri, rendered=rendered.model_dump(mode="json"), tiles_done=rendered.tiles,
                      tiles_total=rendered.tiles, progress=1.0)
    return rendered


def _copy_deliverable(store: ArtifactStore, export_id: int, earlier_id: int,
                      earlier: Rendered) -> tuple[str, int, str, dict]:
    """The earlier export's deliverable as this export's, with its STAC: a COG copied as it is (its item renamed),
    a package written again with its members and the names inside renamed. Returns its URI, size, SHA-256 and
    STAC item or collection."""
    old, new = f"export-{earlier_id}", f"export-{export_id}"
    stac = json.loads(read_whole(store, earlier.stac_uri))
    if earlier.kind == "cog":
        uri = store.copy_artifact(earlier.uri, export_id)
        stac = renamed_item(stac, item_id=new, asset_href=f"./{name_of(uri)}", created=utcnow(),
                            thumbnail_href=f"./{new}.png" if earlier.quicklook_uri else None)
        return uri, earlier.bytes, earlier.sha256, stac
    staged = store.staging_path(export_id).with_suffix(".zip")
    staged.parent.mkdir(parents=True, exist_ok=True)
    with store.local_copy(earlier.uri) as source:
        size, sha256 = rename_package(Path(source), old, new, staged)
    return store.publish(export_id, staged, sha256), size, sha256, json.loads(renamed_text(json.dumps(stac), old, new))


def _acquired(tree) -> list:
    """The acquisition times of the scenes the tree reads (those known)."""
    scene_ids = [s.id for source in tree.sources() for s in source.scenes if s.id is not None]
    with Session(get_engine()) as session:
        return [t for t in session.exec(select(Scene.acquired_at).where(Scene.id.in_(scene_ids))) if t is not None]


@flow(name="deliver-target", flow_run_name="export-{export_id}-target-{target_id}")
def deliver_target(export_id: int, target_id: int, rendered: Rendered) -> dict[str, Any]:
    """Deliver the rendered file to one target, recording the target's own status and result."""
    artifact = Artifact.of(export_id, rendered)
    set_target_status(target_id, TargetStatus.delivering)
    with Session(get_engine()) as session:
        target = session.get(ExportTarget, target_id)
        which = f"target {target.position} ({target.kind.value})"
    note(export_id, f"delivering to {which}")
    try:
        with Session(get_engine()) as session:
            target = session.get(ExportTarget, target_id)
            delivery = DELIVERIES[target.kind]
            result = delivery.deliver(session, artifact, target)
            session.commit()
            if session.get(Export, export_id).status != ExportStatus.delivering:
                # Cancelled (or ended by the reconciler) while this upload ran: take back what it delivered.
                target.result = result
                delivery.cleanup(session, target)
                session.commit()
                raise Conflict(f"export {export_id} was cancelled during delivery; the delivered file was removed")
    except Exception as exc:
        set_target_status(target_id, TargetStatus.error, error=str(exc))
        note(export_id, f"{which} failed: {exc}", "error")
        raise
    set_target_status(target_id, TargetStatus.success, result=result, error=None)
    note(export_id, f"delivered to {which}")
    get_run_logger().info("export %s: target %s delivered", export_id, target_id)
    return result


def _export_run_name() -> str:
    export_id = current_flow_run.parameters.get("export_id")
    return f"export-{export_id}" if export_id is not None else "export-request"


@flow(name="export", flow_run_name=_export_run_name, **STATUS_HOOKS)
def export_flow(export_id: int | None = None, request: ExportRequest | None = None, user: str = "local") -> dict[str, Any]:
    """Render export `export_id` and deliver it to each of its targets.

    From the Prefect UI's run form, give `request` (and the `user` it is for) instead: the flow validates it,
    creates the export row and renames its run after the new export.
    """
    if export_id is None:
        export_id = _order(request, user)
    set_export_fields(export_id, flow_run_id=str(current_flow_run.id))
    announce(export_id)  # its order and claim, made where no Prefect may have been
    with heartbeat(export_id):
        rendered = reuse_render(export_id)
        if rendered is None:
            with render_slot() as pool_size:  # waits, submitted, while every render slot is taken
                mark_status(export_id, ExportStatus.rendering)
                rendered = render_export(export_id, pool_size)
        else:
            mark_status(export_id, ExportStatus.rendering)  # and at once on: nothing to render
        publish_quality(export_id, rendered)
        mark_status(export_id, ExportStatus.delivering)
        start_next()  # this render's slot is free: the next due export need not wait for the poller
        deliver_all(export_id, rendered)
    return {"export_id": export_id, "render": rendered.model_dump(mode="json")}


def _order(request: ExportRequest | None, user: str) -> int:
    """Create and claim the export a UI-started run was given a request for; name the run after it."""
    if request is None:
        raise InvalidRequest("export_id", "give the id of a pending export, or an export request")
    with Session(get_engine()) as session:
        owner = session.exec(select(User).where(User.name == user)).first()
        if owner is None:
            raise NotFound(f"user {user!r} not found")
        export_id = create_export(session, owner=owner, request=request).id
        session.commit()
    if not claim_export(export_id):
        raise Conflict(f"export {export_id} was claimed by someone else")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run(current_flow_run.id, name=f"export-{export_id}")
    get_run_logger().info("created export %s from the run's request", export_id)
    return export_id


def deliver_all(export_id: int, rendered: Rendered, only: list[int] | None = None) -> None:
    """Run one delivery subflow per target (or per target id in `only`); failures are reported together."""
    with Session(get_engine()) as session:
        targets = session.exec(
            select(ExportTarget).where(ExportTarget.export_id == export_id).order_by(ExportTarget.position)
        ).all()
    chosen = [t for t in targets if only is None or t.id in only]
    failures = []
    with without_prefect_heartbeats():  # subflows: their export's run beats for them
        for target in chosen:
            try:
                deliver_target(export_id, target.id, rendered)
            except Exception as exc:  # every target gets its chance; the failures are reported together
                failures.append(f"target {target.position} ({target.kind}): {exc}")
    publish_delivery(export_id)
    if failures:
        raise DeliveryFailed("delivery failed for " + "; ".join(failures))
    create_markdown_artifact(
        key=f"export-{export_id}-result",
        markdown=(f"**Export {export_id}** rendered {rendered.width} x {rendered.height} px, "
                  f"{rendered.bytes:,} bytes, sha256 `{rendered.sha256}`, delivered to {len(chosen)} target(s)."),
    )


@flow(name="retry-delivery", flow_run_name="export-{export_id}-retry-delivery", **STATUS_HOOKS)
def retry_delivery_flow(export_id: int, target_ids: list[int]) -> dict[str, Any]:
    """Deliver an already rendered export again to the given targets, reusing the file in the artifact store.

    The export has been reopened (`flows.services.status.reopen_for_delivery`), so it is in `delivering`.
    """
    set_export_fields(export_id, flow_run_id=str(current_flow_run.id))
    with Session(get_engine()) as session:
        rendered = rendered_of(session.get(Export, export_id))
    if rendered is None:
        raise Conflict(f"export {export_id} has no rendered file to deliver again")
    with heartbeat(export_id):
        deliver_all(export_id, rendered, only=target_ids)
    return {"export_id": export_id, "render": rendered.model_dump(mode="json")}
