"""`geoship projects ...` and `geoship scenes ...`: the catalogue of imagery."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import typer
from rich.table import Table

from cli.common import acting_user, console, print_json, reports_errors, session_scope
from models.errors import InvalidRequest

projects_app = typer.Typer(help="Create, list and inspect projects (ordered mosaics of scenes).", no_args_is_help=True)
scenes_app = typer.Typer(help="Register scenes in a project, and trace where they hold data.", no_args_is_help=True)


def _parse_time(value: str):
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest("acquired", f"expected an ISO 8601 time such as 2024-06-01T10:30:00Z, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@projects_app.command("create")
@reports_errors
def projects_create(name: str, public: bool = typer.Option(False, help="Readable by every user.")) -> None:
    """Create an empty project."""
    from models.catalogue import create_project

    with session_scope() as session:
        project = create_project(session, owner=acting_user(session), name=name,
                                 visibility="public" if public else "private")
        console.print(f"created project {project.name} (id {project.id})")


@projects_app.command("share")
@reports_errors
def projects_share(name: str, user: str = typer.Argument(..., help="The user to share with.")) -> None:
    """Share a project, and your scenes in it, read-only with another user."""
    from models.catalogue import find_project, find_user, share_project

    with session_scope() as session:
        owner = acting_user(session)
        reader = find_user(session, name=user)
        project = find_project(session, user=owner, ref=name)
        scenes = share_project(session, owner=owner, project=project, with_user=reader)
    console.print(f"shared project {project.name} and {scenes} scene(s) with {user}", highlight=False)


@projects_app.command("list")
@reports_errors
def projects_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the projects you can read."""
    from models.catalogue import readable_projects, scene_counts

    with session_scope() as session:
        user = acting_user(session)
        projects = list(session.exec(readable_projects(session, user=user)).all())
        counts = scene_counts(session, projects=projects)
        rows = [(p, counts[p.id]) for p in projects]
        if as_json:
            print_json([{"id": p.id, "name": p.name, "visibility": p.visibility, "scenes": n} for p, n in rows])
            return
        table = Table("id", "name", "visibility", "scenes")
        for project, count in rows:
            table.add_row(str(project.id), project.name, project.visibility, str(count))
        console.print(table)


@projects_app.command("show")
@reports_errors
def projects_show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a project's scenes in mosaic order (first wins)."""
    from models.catalogue import find_project, project_scenes

    with session_scope() as session:
        project = find_project(session, user=acting_user(session), ref=name)
        scenes = project_scenes(session, project=project)
        if as_json:
            print_json({"id": project.id, "name": project.name, "visibility": project.visibility, "scenes": [
                {"order": i, "id": s.id, "name": s.name, "epsg": s.epsg, "crs": s.crs_wkt, "bounds": s.bounds,
                 "width": s.width, "height": s.height, "resolution": [s.res_x, s.res_y], "dtype": s.dtype,
                 "nodata": s.nodata, "bands": s.bands, "acquired_at": s.acquired_at} for i, s in enumerate(scenes)]})
            return
        console.print(f"[bold]{project.name}[/bold] (id {project.id}, {project.visibility}), {len(scenes)} scene(s)")
        table = Table("order", "scene", "crs", "size", "resolution", "dtype", "nodata", "bands")
        for order, s in enumerate(scenes):
            crs = f"EPSG:{s.epsg}" if s.epsg else "custom WKT"
            table.add_row(str(order), s.name, crs, f"{s.width}x{s.height}", f"{s.res_x:g}", s.dtype,
                          "-" if s.nodata is None else f"{s.nodata:g}", ", ".join(b["name"] for b in s.bands))
        console.print(table)


@projects_app.command("reorder")
@reports_errors
def projects_reorder(name: str, scenes: list[str] = typer.Argument(..., help="Every scene, highest priority first.")) -> None:
    """Set the mosaic order of a project's scenes (the first valid pixel wins)."""
    from models.catalogue import find_project, reorder_scenes

    with session_scope() as session:
        user = acting_user(session)
        ordered = reorder_scenes(session, owner=user, project=find_project(session, user=user, ref=name), scene_names=scenes)
        console.print(f"{name}: " + " > ".join(s.name for s in ordered))


def _parse_band_options(bands: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in bands:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InvalidRequest("band", f"expected NAME=FILE, got {item!r}")
        pairs.append((name.strip().lower(), path.strip()))
    return pairs


def _stem(location: str) -> str:
    """A scene's default name: its file's name without the extension, for paths and URLs alike."""
    return PurePosixPath(urlparse(location).path).stem if "://" in location else Path(location).stem


@scenes_app.command("add")
@reports_errors
def scenes_add(
    paths: list[str] = typer.Argument(None, help="Multi-band files, one scene each: paths, s3://bucket/key or "
                                                 "http(s):// URLs of COGs."),
    project: str = typer.Option(..., "--project", help="Project to append the scene(s) to."),
    bands: str = typer.Option(None, "--bands", help="Band names of each file, in order, e.g. red,green,blue,nir."),
    name: str = typer.Option(None, "--name", help="Scene name (required with --band)."),
    band: list[str] = typer.Option(None, "--band", help="NAME=FILE for a scene made of single-band files."),
    nodata: float = typer.Option(None, "--nodata", help="Nodata value, when the file does not set one."),
    acquired: str = typer.Option(None, "--acquired", help="Acquisition time (ISO 8601, UTC unless it says), when "
                                                         "the file does not carry one (TIFFTAG_DATETIME)."),
    scale: float = typer.Option(None, "--scale", help="Physical value = stored * scale + offset, for bands whose "
                                                     "file sets none (e.g. 0.0000275 for Landsat C2 reflectance)."),
    offset: float = typer.Option(None, "--offset", help="See --scale (e.g. -0.2 for Landsat C2 reflectance)."),
) -> None:
    """Register scenes: each PATH is one scene, or --band NAME=FILE ... make one scene of single-band files."""
    from models.catalogue import add_scene, find_project
    from ray_render.inspect import inspect_scene, with_scaling

    acquired_at = _parse_time(acquired) if acquired else None

    band_names = [b.strip().lower() for b in bands.split(",")] if bands else None
    if band and paths:
        raise InvalidRequest("band", "give either files or --band NAME=FILE options, not both")
    if band:
        band_files = _parse_band_options(band)
        if not name:
            raise InvalidRequest("name", "a scene made of --band files needs --name")
        infos = [(name, inspect_scene(band_files=band_files, nodata=nodata))]
    elif paths:
        if name and len(paths) > 1:
            raise InvalidRequest("name", "--name names one scene; give one file")
        infos = [(name or _stem(p), inspect_scene(path=p, band_names=band_names, nodata=nodata)) for p in paths]
    else:
        raise InvalidRequest("paths", "give at least one file, or --band NAME=FILE options")
    with session_scope() as session:
        user = acting_user(session)
        target = find_project(session, user=user, ref=project)
        for scene_name, info in infos:
            info = with_scaling(info, scale, offset)
            if acquired_at is not None:
                info.acquired_at = acquired_at
            scene = add_scene(session, owner=user, project=target, name=scene_name, info=asdict(info))
            console.print(f"added scene {scene.name} (id {scene.id}) to {target.name}: "
                          f"{', '.join(b['name'] for b in scene.bands)}; {scene.width}x{scene.height} px")


@scenes_app.command("trace")
@reports_errors
def scenes_trace(
    project: str = typer.Option(..., "--project", help="The project whose scenes to trace."),
    again: bool = typer.Option(False, "--again", help="Trace every scene of yours in it, also those already traced."),
) -> None:
    """Trace where your scenes in a project hold data (their data areas), for scenes added before `scenes add`
    traced them: exports then skip warping the nodata around the data. Reads every pixel of each scene once."""
    from shapely.geometry import box, shape

    from models.catalogue import find_project, project_scenes
    from models.tables import Scene
    from ray_render.inspect import scene_data_area

    with session_scope() as session:
        user = acting_user(session)
        target = find_project(session, user=user, ref=project)
        todo = [(s.id, s.name, [b["uri"] for b in s.bands], s.nodata, s.bounds) for s in
                project_scenes(session, project=target) if s.owner_id == user.id and (again or s.data_area is None)]
    if not todo:
        console.print(f"every scene of yours in {target.name} has its data area", highlight=False)
        return
    # Every scene is traced before any is stored: an unreadable file stops the command with nothing written.
    traced = [(scene_id, name, scene_data_area(uris, nodata), bounds) for scene_id, name, uris, nodata, bounds in todo]
    with session_scope() as session:
        for scene_id, name, area, bounds in traced:
            scene = session.get(Scene, scene_id)
            scene.data_area = area
            session.add(scene)
            share = 0.0 if area is None else shape(area).area / box(*bounds).area
            console.print(f"traced scene {name} (id {scene_id}): data in {share:.0%} of its bounds", highlight=False)
