"""The export queue: which pending exports start next, fairly, within the cluster's and each user's limits.

Pending exports start round-robin across users (a user with fewer exports running goes first), oldest
first within a user, interactive before bulk (an export's priority: asked for, or small enough, see
`flows.services.submission`). A user never has more than `max_running_per_user` exports running (submitted, rendering
or delivering), and no more exports are claimed than the cluster has render slots free. Claims happen under a
lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: its write lock), so two starters racing (the
poller and a request's immediate start) cannot together exceed a limit or claim one export twice.

Prefect-free: the poller and the API's immediate start call it, and views read the queue position from it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text, update
from sqlmodel import Session, func, select

from flows.services.logbook import log_line
from models.db import get_engine
from models.schemas import QueueView
from models.settings import get_settings
from models.status import ExportStatus, Priority
from models.tables import Export
from models.timestamps import utcnow

# Statuses that count against a user's running exports, and those that hold (or wait for) a render slot.
RUNNING = (ExportStatus.submitted, ExportStatus.rendering, ExportStatus.delivering)
RENDERING = (ExportStatus.submitted, ExportStatus.rendering)
# Any fixed number: the key of the advisory lock that serialises claims on PostgreSQL.
CLAIM_LOCK_KEY = 0x67656F73  # "geos"
_PRIORITY_RANK = {Priority.interactive: 0, Priority.bulk: 1}


@dataclass(frozen=True)
class Queued:
    """A pending export, as the queue orders it."""

    id: int
    owner_id: int
    priority: Priority
    created_at: datetime


def start_order(pending: Iterable[Queued], running: Counter | None = None) -> list[Queued]:
    """Every pending export in the order the queue would start them, ignoring limits.

    Round by round: round n holds each user's (n+1)-th export at once, counting those already running (`running`,
    by owner), so a user with nothing running goes before one who has exports running. Within a user,
    interactive first, then oldest; within a round, interactive first, then by age.
    """
    running = running or Counter()
    by_user: dict[int, list[Queued]] = defaultdict(list)
    for item in sorted(pending, key=_rank):
        by_user[item.owner_id].append(item)
    rounds = [(running[owner] + k, _rank(item), item) for owner, items in by_user.items() for k, item in enumerate(items)]
    return [item for *_, item in sorted(rounds, key=lambda r: (r[0], r[1]))]


def _rank(item: Queued) -> tuple:
    return (_PRIORITY_RANK[item.priority], item.created_at, item.id)


def pick(order: list[Queued], running: Counter, *, per_user: int, slots: int) -> list[Queued]:
    """From `order`, the exports to start now: at most `slots`, and none that would take its owner past
    `per_user` running exports (`running`: running exports by owner)."""
    chosen: list[Queued] = []
    counts = Counter(running)
    for item in order:
        if len(chosen) >= slots:
            break
        if counts[item.owner_id] < per_user:
            chosen.append(item)
            counts[item.owner_id] += 1
    return chosen


def _pending(session: Session) -> list[Queued]:
    rows = session.exec(select(Export.id, Export.owner_id, Export.priority, Export.created_at)
                        .where(Export.status == ExportStatus.pending)).all()
    return [Queued(*row) for row in rows]


def _running_by_owner(session: Session) -> Counter:
    rows = session.exec(select(Export.owner_id, func.count()).where(Export.status.in_(RUNNING))
                        .group_by(Export.owner_id)).all()
    return Counter(dict(rows))


def _rendering(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Export).where(Export.status.in_(RENDERING))).one()


def claim_due(render_slots: int, limit: int | None = None) -> list[int]:
    """Claim (pending -> submitted, one more attempt) the exports due to start, fairly, while fewer than
    `render_slots` exports hold or await a render slot; at most `limit`. Returns the claimed ids in start order."""
    per_user = get_settings().max_running_per_user
    with Session(get_engine()) as session:
        _lock(session)
        free = render_slots - _rendering(session)
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return []
        running = _running_by_owner(session)
        chosen = pick(start_order(_pending(session), running), running, per_user=per_user, slots=free)
        claimed = []
        for item in chosen:
            moved = session.execute(
                update(Export).where(Export.id == item.id, Export.status == ExportStatus.pending)
                .values(status=ExportStatus.submitted, attempts=Export.attempts + 1, updated_at=utcnow()))
            if moved.rowcount == 1:
                session.execute(log_line(item.id, "submitted: its turn in the queue came", "info", ExportStatus.submitted))
                claimed.append(item.id)
        session.commit()
    return claimed


def _lock(session: Session) -> None:
    """Serialise claimers for the rest of this transaction."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
    else:  # SQLite: BEGIN IMMEDIATE is not what SQLAlchemy issues; a write takes the database's write lock
        session.execute(update(Export).where(Export.id == -1).values(updated_at=utcnow()))


def queue_view(session: Session, export: Export) -> QueueView | None:
    """Where a pending export stands: its place in the start order and what it waits for; None otherwise."""
    if export.status != ExportStatus.pending:
        return None
    running = _running_by_owner(session)
    order = start_order(_pending(session), running)
    position = next(i for i, item in enumerate(order, 1) if item.id == export.id)
    per_user = get_settings().max_running_per_user
    own_running = running[export.owner_id]
    if own_running >= per_user:
        waiting_for = (f"{own_running} of your exports running (at most {per_user} at once, "
                       "GEOSHIP_MAX_RUNNING_PER_USER); it starts when one finishes")
    else:
        waiting_for = f"a render slot ({_rendering(session)} render(s) running or starting now)"
    return QueueView(position=position, of=len(order), waiting_for=waiting_for, priority=export.priority)
