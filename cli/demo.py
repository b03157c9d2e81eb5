"""`geoship demo`: generate sample scenes and run a real export end to end."""

from __future__ import annotations

from dataclasses import asdict

import typer

from cli.common import EXIT_FAILED, acting_user, console, reports_errors, session_scope
from cli.exports import show_export
from cli.sample_scenes import DEMO_AOI, DEMO_SCENES
from models.status import ExportStatus

DEMO_PROJECT = "demo"


def _demo_project(session, user):
    """The demo project with its sample scenes, created (and the scenes generated) on first run."""
    from sqlmodel import select

    from cli.samples import write_scene
    from models.catalogue import add_scene, create_project, project_scenes
    from models.settings import get_settings
    from models.tables import Project
    from ray_render.inspect import inspect_scene

    project = session.exec(select(Project).where(Project.owner_id == user.id, Project.name == DEMO_PROJECT)).first()
    if project is None:
        project = create_project(session, owner=user, name=DEMO_PROJECT)
    if not project_scenes(session, project=project):
        directory = get_settings().home / "samples"
        for scene in DEMO_SCENES:
            path = directory / f"{scene.name}.tif"
            if not path.exists():
                console.print(f"generating sample scene {scene.name} (EPSG:{scene.epsg})")
                write_scene(scene, directory)
            add_scene(session, owner=user, project=project, name=scene.name, info=asdict(inspect_scene(path=str(path))))
    return project


@reports_errors
def demo() -> None:
    """Export a colour-corrected RGB mosaic of two sample scenes (two UTM zones), clipped to a polygon,
    into EPSG:3857, through the real pipeline: export row, Prefect flow, Ray tile actors, COG, HTTP link."""
    from cli.running import run_export_now
    from flows.services.submission import create_export
    from models.schemas import ColorCorrection, ExportRequest

    with session_scope() as session:
        user = acting_user(session)
        project = _demo_project(session, user)
        request = ExportRequest(project=project.id, tool="rgb", bands=["red", "green", "blue"],
                                color_correct=ColorCorrection(percentiles=(1, 99), gamma=1.2), aoi=DEMO_AOI, srid=3857)
        export = create_export(session, owner=user, request=request)
        console.print(f"export {export.id}: {export.grid['width']} x {export.grid['height']} px at "
                      f"{export.resolution:.2f} m in EPSG:3857, status {export.status.value}")
    run_export_now(export.id)
    status = show_export(export.id, as_json=False)
    if status != ExportStatus.success:
        raise typer.Exit(EXIT_FAILED)
    console.print("serve the download link with: geoship serve")
