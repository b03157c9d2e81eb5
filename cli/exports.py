"""`geoship export` and `geoship status`: order an export and follow it."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from cli.common import EXIT_FAILED, acting_user, console, print_json, reports_errors, session_scope
from cli.tools import read_tree_file
from models.errors import InvalidAOI, InvalidRequest
from models.schemas import (
    COMPRESSIONS,
    RESAMPLING_METHODS,
    TOOL_NAMES,
    ColorCorrection,
    ExportRequest,
    StretchRequest,
    TargetRequest,
)
from models.status import ExportStatus, TargetKind
from models.tooltree import INDICES

# Choices read from the registries the request schema uses, so the CLI offers exactly what the API accepts.
Compression = Enum("Compression", {name: name for name in COMPRESSIONS}, type=str)
ResamplingMethod = Enum("ResamplingMethod", {name: name for name in RESAMPLING_METHODS}, type=str)
TOOL_HELP = ("rgb, a named index computed on each band's scale and offset ("
             + ", ".join(f"{name}: {index.formula}" for name, index in INDICES.items())
             + "), or a saved tool (geoship tools list), by name or owner/name.")


def _read_aoi(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidAOI("aoi", f"no such file: {path}") from None
    except json.JSONDecodeError as exc:
        raise InvalidAOI("aoi", f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _bindings(items: list[str] | None) -> dict[str, str] | None:
    """--bind SLOT=PROJECT, once per slot, as the request's `bind`."""
    if not items:
        return None
    found: dict[str, str] = {}
    for item in items:
        slot, sep, project = item.partition("=")
        if not sep or not slot or not project:
            raise InvalidRequest("bind", f"expected SLOT=PROJECT, got {item!r}")
        if slot in found:
            raise InvalidRequest(f"bind.{slot}", "bound twice")
        found[slot] = project
    return found


def _color_correction(enabled: bool, stretch: list[str] | None, percentiles: str, gamma: float) -> ColorCorrection | None:
    if not enabled and not stretch:
        return None
    parsed = []
    for item in stretch or []:
        try:
            band, low, high = item.split(":")
            parsed.append(StretchRequest(band=band, min=float(low), max=float(high)))
        except ValueError:
            raise InvalidRequest("stretch", f"expected BAND:MIN:MAX, got {item!r}") from None
    try:
        low, high = (float(v) for v in percentiles.split(","))
    except ValueError:
        raise InvalidRequest("percentiles", f"expected LOW,HIGH, got {percentiles!r}") from None
    return ColorCorrection(stretch=parsed or None, percentiles=(low, high), gamma=gamma)


def show_export(export_id: int, as_json: bool) -> ExportStatus:
    """Print an export's status (human or JSON) and return it."""
    from flows.services.views import export_view, get_export

    with session_scope() as session:
        view = export_view(session, get_export(session, owner=acting_user(session), export_id=export_id))
    if as_json:
        print_json(view.model_dump(mode="json"))
        return view.status
    colour = {"success": "green", "error": "red"}.get(view.status.value, "cyan")
    console.print(f"export {view.id}: [{colour}]{view.status.value}[/{colour}]  "
                  f"{view.tiles_done}/{view.tiles_total} tiles ({view.progress:.0%})")
    if view.error:
        console.print(f"  error: {view.error}", highlight=False, soft_wrap=True)
    if view.artifact:
        console.print(f"  file: {view.artifact}", highlight=False)
    for band, scenes in view.skipped_scenes.items():
        console.print(f"  note: {', '.join(scenes)} lack(s) band {band} and contribute nothing to it", highlight=False)
    for target in view.targets:
        console.print(f"  target {target.kind.value}: {target.status.value}", highlight=False)
        if (target.result or {}).get("url"):
            console.print(f"    download: {target.result['url']}", highlight=False, soft_wrap=True)
        if target.error:
            console.print(f"    error: {target.error}", highlight=False, soft_wrap=True)
    return view.status


export_app = typer.Typer(help="Order an export of a project, or retry its delivery.")


def _credential_id(session, ref: str | None, kind: str) -> int | None:
    """A credential given by id or label, as its id (the owner check happens at submission)."""
    if ref is None:
        return None
    if ref.isdigit():
        return int(ref)
    from delivery.credentials import list_credentials

    matches = [c.id for c in list_credentials(session, owner=acting_user(session)) if c.label == ref]
    if not matches:
        raise InvalidRequest(f"{kind}-credential", f"you have no credential labelled {ref!r}")
    return matches[0]


def _targets(session, kinds: list[TargetKind], *, link_ttl_hours, link_rate, link_quota, s3_bucket, s3_prefix,
             s3_credential, owner_full_control, dropbox_credential, dropbox_folder) -> list[TargetRequest]:
    targets = []
    for kind in kinds:
        if kind == TargetKind.http:
            config = {"ttl_hours": link_ttl_hours, "byte_rate_limit": link_rate, "download_quota": link_quota}
            targets.append(TargetRequest(kind=kind, config={k: v for k, v in config.items() if v is not None}))
        elif kind == TargetKind.s3:
            if not s3_bucket:
                raise InvalidRequest("s3-bucket", "an s3 target needs --s3-bucket")
            config = {"bucket": s3_bucket, "prefix": s3_prefix or "", "owner_full_control": owner_full_control}
            targets.append(TargetRequest(kind=kind, config=config, credential_id=_credential_id(session, s3_credential, "s3")))
        else:
            config = {"folder": dropbox_folder} if dropbox_folder else {}
            targets.append(TargetRequest(kind=kind, config=config,
                                         credential_id=_credential_id(session, dropbox_credential, "dropbox")))
    return targets


@export_app.callback(invoke_without_command=True)
@reports_errors
def export(
    ctx: typer.Context,
    project: str = typer.Option(None, "--project", help="Project name or id (with --tool-tree: for leaves that name "
                                                        "no project)."),
    tool: str = typer.Option("rgb", "--tool", help=TOOL_HELP),
    bind: list[str] = typer.Option(None, "--bind", help="SLOT=PROJECT: the project a saved tool's slot reads, once "
                                                        "per slot."),
    tool_tree: Path = typer.Option(None, "--tool-tree", help="A tool tree of your own (JSON file) instead of --tool; "
                                                             "its leaves name the projects or scenes they read."),
    bands: str = typer.Option(None, "--bands", help="Bands to use, e.g. red,green,blue or nir,red,green."),
    color_correct: bool = typer.Option(False, "--color-correct", help="Stretch to 8-bit (percentiles unless --stretch)."),
    stretch: list[str] = typer.Option(None, "--stretch", help="BAND:MIN:MAX, once per band."),
    percentiles: str = typer.Option("2,98", "--percentiles", help="LOW,HIGH percentiles for the automatic stretch."),
    gamma: float = typer.Option(1.0, "--gamma"),
    aoi: Path = typer.Option(None, "--aoi", help="GeoJSON geometry, Feature or FeatureCollection (EPSG:4326)."),
    keep_extent: bool = typer.Option(False, "--keep-extent", help="Keep the project's whole extent (nodata outside "
                                                                   "the AOI) instead of cropping to the AOI."),
    srid: int = typer.Option(3857, "--srid", help="Output EPSG code."),
    resolution: float = typer.Option(None, "--resolution", help="Output pixel size in output CRS units."),
    resampling: ResamplingMethod = typer.Option(None, "--resampling", help="Default: nearest for plain RGB, bilinear "
                                                "for colour correction, indices and tool trees (whose leaves may set "
                                                "their own)."),
    compression: Compression = typer.Option("deflate", "--compression", help="deflate, zstd or lzw; jpeg or webp for "
                                             "8-bit RGB (--color-correct), with an internal mask."),
    to: list[TargetKind] = typer.Option([TargetKind.http], "--to", help="Delivery target(s): http, s3, dropbox."),
    link_ttl_hours: float = typer.Option(None, "--link-ttl-hours", help="http: hours until the link expires."),
    link_rate: int = typer.Option(None, "--link-rate", help="http: bytes per second each link may serve."),
    link_quota: int = typer.Option(None, "--link-quota", help="http: number of downloads the link allows."),
    s3_bucket: str = typer.Option(None, "--s3-bucket"),
    s3_prefix: str = typer.Option(None, "--s3-prefix"),
    s3_credential: str = typer.Option(None, "--s3-credential", help="Credential id or label."),
    owner_full_control: bool = typer.Option(None, "--owner-full-control/--no-owner-full-control",
                                            help="s3: grant the bucket owner full control (default: when you do not own it)."),
    dropbox_credential: str = typer.Option(None, "--dropbox-credential", help="Credential id or label."),
    dropbox_folder: str = typer.Option(None, "--dropbox-folder", help="Folder in your Dropbox (default /geoship)."),
    webhook: str = typer.Option(None, "--webhook", help="URL that each status change is POSTed to, signed (default: "
                                                        "your account's, see `geoship webhook`)."),
    wait: bool = typer.Option(False, "--wait", help="Run it now and wait, with a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the export as one JSON object."),
) -> None:
    """Order an export of a project. Without --wait it stays pending for the poller."""
    if ctx.invoked_subcommand is not None:
        return
    if not project and tool_tree is None and tool in TOOL_NAMES:
        raise InvalidRequest("project", "--project is required to order an export (or --tool-tree, or a saved tool, "
                                        "whose leaves name their projects)")
    from pydantic import ValidationError

    # Planning reads geometry and rasters (pyproj, rasterio): imported by the commands that plan.
    from cli.webhooks import show_new_secret
    from delivery.webhook_settings import account_webhook, signing_secret
    from flows.services.settling import settle_gone_runs
    from flows.services.submission import create_export

    settle_gone_runs()  # exports left running by commands of this machine that died, before a new one queues

    with session_scope() as session:
        try:
            request = ExportRequest(
                project=project or None, tool=tool, bind=_bindings(bind),
                tool_tree=read_tree_file(tool_tree, "tool-tree") if tool_tree else None,
                bands=[b.strip() for b in bands.split(",")] if bands else None,
                color_correct=_color_correction(color_correct, stretch, percentiles, gamma),
                aoi=_read_aoi(aoi) if aoi else None, extent="project" if keep_extent else "aoi",
                srid=srid, resolution=resolution, resampling=resampling.value if resampling else None,
                compression=compression.value,
                targets=_targets(session, to, link_ttl_hours=link_ttl_hours, link_rate=link_rate, link_quota=link_quota,
                                 s3_bucket=s3_bucket, s3_prefix=s3_prefix, s3_credential=s3_credential,
                                 owner_full_control=owner_full_control, dropbox_credential=dropbox_credential,
                                 dropbox_folder=dropbox_folder),
                webhook_url=webhook,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            reason = first["msg"].removeprefix("Value error, ")
            raise InvalidRequest(".".join(map(str, first["loc"])) or "request", reason) from None
        owner = acting_user(session)
        first_secret = webhook is not None and account_webhook(session, owner.id) is None
        export_id = create_export(session, owner=owner, request=request).id
        if first_secret:
            show_new_secret(signing_secret(account_webhook(session, owner.id)))
    if wait:
        from cli.running import run_export_now

        run_export_now(export_id)
    status = show_export(export_id, as_json)
    if not wait and not as_json:
        console.print(f"  the poller deployment will start it; to run it here now: geoship run {export_id}")
    if wait and status != ExportStatus.success:
        raise typer.Exit(EXIT_FAILED)


@export_app.command("retry-delivery")
@reports_errors
def retry_delivery(
    export_id: int,
    target: int = typer.Option(None, "--target", help="Only this target (its position, 0 first); default: every "
                                                      "target not yet delivered."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Deliver a rendered export again, reusing its file: no re-rendering."""
    from cli.running import retry_delivery_now
    from flows.services.retry import reopen_for_delivery

    with session_scope() as session:
        target_ids = reopen_for_delivery(session, owner=acting_user(session), export_id=export_id, position=target)
    retry_delivery_now(export_id, target_ids)
    if show_export(export_id, as_json) != ExportStatus.success:
        raise typer.Exit(EXIT_FAILED)


@export_app.command("cancel")
@reports_errors
def cancel(export_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Cancel an unfinished export: it ends in error, its run is stopped and partial uploads are removed."""
    from flows.starting import cancel_export

    with session_scope() as session:
        cancel_export(session, owner=acting_user(session), export_id=export_id)
    show_export(export_id, as_json)


@reports_errors
def run(export_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Run a pending export now, in this process, with a progress bar (no poller needed)."""
    from cli.running import run_export_now
    from flows.services.views import get_export

    with session_scope() as session:
        get_export(session, owner=acting_user(session), export_id=export_id)  # yours, or not found
    run_export_now(export_id)
    if show_export(export_id, as_json) != ExportStatus.success:
        raise typer.Exit(EXIT_FAILED)


@reports_errors
def status(export_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show an export's status, progress, file and targets."""
    show_export(export_id, as_json)


@reports_errors
def logs(export_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show an export's own log: the order, its status changes, the render, each delivery attempt, the end."""
    from flows.services.views import export_log_view

    with session_scope() as session:
        lines = export_log_view(session, owner=acting_user(session), export_id=export_id)
    if as_json:
        print_json([line.model_dump(mode="json") for line in lines])
        return
    for line in lines:
        typer.echo(f"{line.at:%Y-%m-%d %H:%M:%S}  {line.level:<7}  {line.message}")  # one line each, for grep
