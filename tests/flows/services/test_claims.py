"""Claiming pending exports: starters racing over the same rows never take one twice (the queue claims under a
lock: an advisory lock on PostgreSQL, the write lock on SQLite)."""

import threading

import pytest
from sqlmodel import select

from flows.services.queue import claim_due
from flows.services.status import advance_export
from models.status import ExportStatus
from models.tables import Export, User


def insert_pending(session, count: int) -> list[int]:
    user = User(name="claims")
    session.add(user)
    session.flush()
    exports = [Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={}) for _ in range(count)]
    session.add_all(exports)
    session.commit()
    return [e.id for e in exports]


@pytest.fixture(autouse=True)
def no_per_user_limit(monkeypatch):
    """These rows are one user's: lift the per-user limit, so that only the race is under test."""
    from models.settings import get_settings

    monkeypatch.setenv("GEOSHIP_MAX_RUNNING_PER_USER", "100000")
    get_settings.cache_clear()


def test_two_claimers_split_the_rows_without_overlap(session):
    ids = insert_pending(session, 60)
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def claimer(name: str) -> None:
        barrier.wait()
        claimed = []
        while batch := claim_due(render_slots=100000, limit=5):
            claimed += batch
        results[name] = claimed

    threads = [threading.Thread(target=claimer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(results["a"]) & set(results["b"])
    assert sorted(results["a"] + results["b"]) == ids
    session.expire_all()
    assert {e.status for e in session.exec(select(Export)).all()} == {ExportStatus.submitted}


def test_several_pollers_at_once_claim_hundreds_of_rows_exactly_once(session):
    ids = insert_pending(session, 300)
    claims: list[list[int]] = [[] for _ in range(6)]
    barrier = threading.Barrier(len(claims))

    errors: list[Exception] = []

    def poller(mine: list[int]) -> None:
        barrier.wait()
        idle = 0
        try:
            while idle < 3:  # a round can come back empty while others hold the rows it looked at
                batch = claim_due(render_slots=100000, limit=7)
                mine += batch
                idle = 0 if batch else idle + 1
        except Exception as exc:  # a claimer that hits the lock must wait for it, never fail
            errors.append(exc)

    threads = [threading.Thread(target=poller, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = [i for c in claims for i in c]
    assert sorted(everything) == ids  # every row claimed, none twice (claims take turns under the lock)
    session.expire_all()
    rows = session.exec(select(Export)).all()
    assert {(e.status, e.attempts) for e in rows} == {(ExportStatus.submitted, 1)}


def test_a_status_only_moves_forward(session):
    (export_id,) = insert_pending(session, 1)
    assert advance_export(export_id, ExportStatus.submitted)
    assert not advance_export(export_id, ExportStatus.submitted)      # already there
    assert advance_export(export_id, ExportStatus.rendering)
    assert not advance_export(export_id, ExportStatus.pending)        # backwards
    assert advance_export(export_id, ExportStatus.error, error="boom")
    assert not advance_export(export_id, ExportStatus.success)        # out of a final status
    session.expire_all()
    row = session.get(Export, export_id)
    assert (row.status, row.error) == (ExportStatus.error, "boom") and row.finished_at is not None
