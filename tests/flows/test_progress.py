"""The render's progress reporter: written to the export row in a thread of its own, so the render's loop never
waits for the database or Prefect's API; and a write that finds the export no longer rendering stops the render."""

import threading
import time

import pytest

from flows import progress as progress_module
from flows.progress import ProgressReporter
from flows.services.status import claim_export
from flows.services.submission import create_export
from models.errors import Conflict
from models.schemas import ExportRequest
from models.status import ExportStatus
from models.tables import Export
from tests.conftest import SMALL_AOI

pytestmark = pytest.mark.usefixtures("prefect_server")


def rendering_export(session, owner, status=ExportStatus.rendering) -> int:
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", aoi=SMALL_AOI))
    session.commit()
    assert claim_export(export.id)
    set_status(session, export.id, status)
    return export.id


def set_status(session, export_id: int, status: ExportStatus) -> None:
    session.expire_all()
    session.get(Export, export_id).status = status
    session.commit()


def test_progress_is_written_by_its_own_thread_and_the_last_figure_lands(session, owner, project, monkeypatch):
    export_id = rendering_export(session, owner)
    writers = []
    record = progress_module.record_progress

    def noting_the_thread(*args):
        writers.append(threading.current_thread().name)
        return record(*args)

    monkeypatch.setattr(progress_module, "record_progress", noting_the_thread)
    with ProgressReporter(export_id, interval=0.0) as progress:
        for done in range(21):
            progress(done, 20)

    session.expire_all()
    row = session.get(Export, export_id)
    assert (row.tiles_done, row.tiles_total, row.progress) == (20, 20, 1.0)
    assert writers and all(name.startswith(f"progress-{export_id}") for name in writers)


def test_a_write_that_finds_the_export_ended_stops_the_render_at_its_next_call(session, owner, project):
    export_id = rendering_export(session, owner)
    with ProgressReporter(export_id, interval=0.0) as progress:
        progress(0, 10)
        set_status(session, export_id, ExportStatus.error)  # cancelled by its owner meanwhile
        deadline = time.monotonic() + 30
        with pytest.raises(Conflict, match=f"export {export_id} is no longer rendering"):
            while time.monotonic() < deadline:
                progress(5, 10)
                time.sleep(0.01)
        with pytest.raises(Conflict):  # and at every call after: the render stops
            progress(6, 10)
    session.expire_all()
    assert session.get(Export, export_id).tiles_done == 0  # nothing was written once it had ended


def test_the_last_figure_is_written_before_the_call_returns(session, owner, project):
    export_id = rendering_export(session, owner)
    with ProgressReporter(export_id, interval=3600) as progress:
        progress(0, 10)
        progress(10, 10)
        session.expire_all()
        assert session.get(Export, export_id).tiles_done == 10
        set_status(session, export_id, ExportStatus.error)
        with pytest.raises(Conflict, match="no longer rendering"):  # in the call: the render fails and cleans up
            progress(10, 10)
