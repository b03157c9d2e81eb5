"""Render slots: the global concurrency limit's slots that no render holds come back, and those that renders
hold stay taken."""

import pytest
from prefect.client.orchestration import get_client

from flows.capacity import RENDER_LIMIT, reclaim_leaked_slots
from models.status import ExportStatus
from models.tables import Export, User

pytestmark = pytest.mark.usefixtures("prefect_server", "no_render_limit_after")


@pytest.fixture
def no_render_limit_after():
    """The session's Prefect server is shared: leave no slot taken for the renders of later tests."""
    yield
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(RENDER_LIMIT)


def _limit(limit: int, taken: int) -> None:
    """The render limit with `taken` slots counted as taken, as a server that forgot their leases has them."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(RENDER_LIMIT, limit)
        current = client.read_global_concurrency_limit_by_name(RENDER_LIMIT).active_slots
        if current:
            client.release_concurrency_slots(names=[RENDER_LIMIT], slots=current, occupancy_seconds=1.0)
        if taken:
            client.increment_concurrency_slots(names=[RENDER_LIMIT], slots=taken, mode="concurrency")


def _taken() -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(RENDER_LIMIT).active_slots


def _exports(session, *statuses: ExportStatus) -> None:
    user = User(name="ada")
    session.add(user)
    session.flush()
    session.add_all(Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={}, status=status)
                    for status in statuses)
    session.commit()


def test_slots_no_render_holds_come_back_and_held_ones_stay(session):
    # Three slots taken; one export renders (holding one), one waits for a slot, one delivers (holds none).
    _exports(session, ExportStatus.rendering, ExportStatus.submitted, ExportStatus.delivering)
    _limit(4, taken=3)
    assert reclaim_leaked_slots(confirm_seconds=0.1) == 2
    assert _taken() == 1  # the rendering export's


def test_nothing_is_given_back_while_every_slot_has_its_render(session):
    _exports(session, ExportStatus.rendering, ExportStatus.rendering)
    _limit(2, taken=2)
    assert reclaim_leaked_slots(confirm_seconds=0.1) == 0
    assert _taken() == 2
