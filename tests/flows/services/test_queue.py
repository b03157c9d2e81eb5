"""The export queue: round-robin across users, oldest first within a user, interactive ahead of bulk, within the
render slots and each user's limit; and what a waiting export is told."""

from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import select

from flows.services.queue import Queued, claim_due, start_order
from flows.services.submission import create_export, plan_export
from flows.services.views import export_view
from models.schemas import ExportRequest
from models.settings import get_settings
from models.status import ExportStatus, Priority
from models.tables import Export, User
from models.timestamps import utcnow

T0 = utcnow()


def _queued(export_id, owner, minutes, priority=Priority.bulk):
    return Queued(export_id, owner, priority, T0 + timedelta(minutes=minutes))


def test_each_round_takes_one_export_per_user_interactive_first_then_oldest():
    ada = [_queued(i, 1, i) for i in range(1, 6)]  # five bulk exports, from minute 1 on
    bob = [_queued(10, 2, 30)]  # one, later than all of ada's
    cy = [_queued(20, 3, 40, Priority.interactive), _queued(21, 3, 41)]  # a small one, the newest of all
    order = [q.id for q in start_order(ada + bob + cy)]
    # Round 1: cy's interactive export, then ada's oldest, then bob's; round 2: ada's next, cy's bulk one; ...
    assert order == [20, 1, 10, 2, 21, 3, 4, 5]


def test_within_a_user_interactive_exports_go_before_older_bulk_ones():
    order = [q.id for q in start_order([_queued(1, 1, 0), _queued(2, 1, 5, Priority.interactive)])]
    assert order == [2, 1]


@pytest.fixture
def users(session):
    made = {name: User(name=name) for name in ("ada", "bob", "cy")}
    session.add_all(made.values())
    session.commit()
    return made


def _pending(session, user, count, start_minute=0, status=ExportStatus.pending):
    exports = [Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={}, status=status,
                      created_at=T0 + timedelta(minutes=start_minute + i)) for i in range(count)]
    session.add_all(exports)
    session.commit()
    return [e.id for e in exports]


def _statuses(session):
    session.expire_all()
    return {e.id: e.status for e in session.exec(select(Export)).all()}


def test_one_users_backlog_does_not_hold_back_another_users_first_export(session, users):
    ada = _pending(session, users["ada"], 6)  # the oldest six
    bob = _pending(session, users["bob"], 1, start_minute=30)
    claimed = claim_due(render_slots=10)
    # ada may run two at once (GEOSHIP_MAX_RUNNING_PER_USER's default); bob's export starts beside them.
    assert claimed == [ada[0], bob[0], ada[1]]
    statuses = _statuses(session)
    assert [statuses[i] for i in ada] == [ExportStatus.submitted] * 2 + [ExportStatus.pending] * 4
    assert claim_due(render_slots=10) == []  # ada is at her limit, bob has nothing left


def test_no_more_are_claimed_than_render_slots_are_free(session, users):
    _pending(session, users["cy"], 1, status=ExportStatus.rendering)  # holds one of the two slots
    ada = _pending(session, users["ada"], 2)
    bob = _pending(session, users["bob"], 2, start_minute=10)
    assert claim_due(render_slots=2) == [ada[0]]
    assert claim_due(render_slots=2) == []
    session.get(Export, ada[0]).status = ExportStatus.delivering  # delivering holds no render slot
    session.commit()
    assert claim_due(render_slots=2) == [bob[0]]  # bob has nothing running: his first goes before ada's second


def test_users_with_exports_running_go_after_those_with_none():
    order = [q.id for q in start_order([_queued(1, 1, 0), _queued(2, 1, 1), _queued(3, 2, 9)], Counter({1: 1}))]
    assert order == [3, 1, 2]


def test_a_waiting_export_says_where_it_stands_and_what_it_waits_for(session, users, monkeypatch):
    monkeypatch.setenv("GEOSHIP_MAX_RUNNING_PER_USER", "1")
    get_settings.cache_clear()
    ada = _pending(session, users["ada"], 3)
    bob = _pending(session, users["bob"], 1, start_minute=10)
    assert claim_due(render_slots=1) == [ada[0]]
    views = {i: export_view(session, session.get(Export, i)) for i in (*ada, *bob)}
    assert views[ada[0]].queue is None  # submitted: no longer queued
    bob_queue, ada_queue = views[bob[0]].queue, views[ada[1]].queue
    assert (bob_queue.position, bob_queue.of) == (1, 3)  # next, though newer than ada's two waiting
    assert "a render slot (1 render(s) running or starting now)" in bob_queue.waiting_for
    assert (ada_queue.position, views[ada[2]].queue.position) == (2, 3)
    assert "1 of your exports running (at most 1 at once" in ada_queue.waiting_for


def test_small_exports_are_interactive_unless_the_request_says_otherwise(session, owner, project, monkeypatch):
    small = ExportRequest(project="alps", resolution=480)
    size = plan_export(session, owner=owner, request=small).estimate.bytes
    assert plan_export(session, owner=owner, request=small).estimate.priority == Priority.interactive
    monkeypatch.setenv("GEOSHIP_INTERACTIVE_MAX_BYTES", str(size - 1))
    get_settings.cache_clear()
    assert create_export(session, owner=owner, request=small).priority == Priority.bulk
    asked = small.model_copy(update={"priority": Priority.interactive})
    assert create_export(session, owner=owner, request=asked).priority == Priority.interactive
