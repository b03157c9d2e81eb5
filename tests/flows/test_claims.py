"""Claiming pending exports: two claimers racing over the same rows never take one twice."""

import threading

from sqlmodel import select

from flows.status import advance_export, claim_pending_exports
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


def test_two_claimers_split_the_rows_without_overlap(session):
    ids = insert_pending(session, 60)
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def claimer(name: str) -> None:
        barrier.wait()
        claimed = []
        while batch := claim_pending_exports(limit=5):
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
