"""Tile actors kept between renders by a long-lived driver (`geoship worker`), so that a render's actors are
running before it starts.

A new tile actor's worker process takes 1-2 s to start and import GDAL, numpy and the renderer on this machine
kind (two at once on two cores: about 1.7 s, bench/RESULTS.md), and every render waited for that. A driver that
keeps a reserve gives its actors back after a render that went well; the next render of the same kind (GDAL
cache size and environment: what an actor's worker keeps for good) takes them and `begin`s them on its own
tree. An idle actor still holds its CPU in Ray's accounting, so it is ended once idle for `idle_seconds` (and
the resident worker ends them all as soon as another process renders); one that has served `max_renders`
renders is ended too, so that nothing a worker accumulates (GDAL's caches, allocator fragmentation) grows
without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import ray


@dataclass
class _Idle:
    actor: object
    kind: Hashable
    renders: int
    since: float


class ActorReserve:
    """Idle tile actors of this driver, by kind."""

    def __init__(self, idle_seconds: float, max_renders: int = 50, clock: Callable[[], float] = time.monotonic):
        self.idle_seconds = idle_seconds
        self.max_renders = max_renders
        self._clock = clock
        self._idle: list[_Idle] = []
        self._renders: dict[object, int] = {}  # actor handle -> renders served, while lent to a render
        self._lock = threading.Lock()
        self.stopped = False

    def take(self, count: int, kind: Hashable) -> list:
        """Up to `count` idle actors of `kind`, most recently used first; the caller makes the rest."""
        self.expire()
        with self._lock:
            mine = [idle for idle in reversed(self._idle) if idle.kind == kind][:count]
            for idle in mine:
                self._idle.remove(idle)
                self._renders[idle.actor] = idle.renders
        return [idle.actor for idle in mine]

    def give_back(self, actors: list, kind: Hashable) -> None:
        """Keep `actors` (done with a render that went well, `end`ed) for the next render of `kind`."""
        spent = []
        with self._lock:
            for actor in actors:
                renders = self._renders.pop(actor, 0) + 1
                if renders >= self.max_renders:
                    spent.append(actor)
                else:
                    self._idle.append(_Idle(actor, kind, renders, self._clock()))
        for actor in spent:
            ray.kill(actor)

    def add(self, actors: list, kind: Hashable) -> None:
        """Keep new `actors` of `kind`, started ahead of any render."""
        with self._lock:
            self._idle.extend(_Idle(actor, kind, 0, self._clock()) for actor in actors)

    def forget(self, actor) -> None:
        """An actor lent to a render that will not come back (killed or replaced)."""
        with self._lock:
            self._renders.pop(actor, None)

    def expire(self) -> int:
        """End the actors idle for longer than `idle_seconds`; returns how many."""
        now = self._clock()
        with self._lock:
            old = [idle for idle in self._idle if now - idle.since > self.idle_seconds]
            self._idle = [idle for idle in self._idle if now - idle.since <= self.idle_seconds]
        for idle in old:
            ray.kill(idle.actor)
        return len(old)

    def clear(self) -> int:
        """End every idle actor; returns how many."""
        with self._lock:
            idle, self._idle = self._idle, []
        for entry in idle:
            ray.kill(entry.actor)
        return len(idle)

    @property
    def idle(self) -> int:
        """How many actors wait in the reserve."""
        with self._lock:
            return len(self._idle)


_reserve: ActorReserve | None = None


def keep_actors(idle_seconds: float, max_renders: int = 50) -> ActorReserve:
    """Keep tile actors between this process's renders from now on, each for up to `idle_seconds` idle; a
    thread ends those that have waited longer. Returns the reserve."""
    global _reserve
    if _reserve is None:
        _reserve = ActorReserve(idle_seconds, max_renders)
        threading.Thread(target=_expire_forever, args=(_reserve,), name="actor-reserve", daemon=True).start()
    return _reserve


def stop_keeping_actors() -> None:
    """Keep no more actors between renders; the idle ones end now."""
    global _reserve
    reserve, _reserve = _reserve, None
    if reserve is not None:
        reserve.stopped = True
        reserve.clear()


def actor_reserve() -> ActorReserve | None:
    """This process's reserve, when it keeps actors between renders."""
    return _reserve


def _expire_forever(reserve: ActorReserve) -> None:
    while not reserve.stopped:
        time.sleep(max(0.5, min(reserve.idle_seconds / 4, 5.0)))
        try:
            reserve.expire()
        except Exception:  # Ray gone (the driver is shutting down): nothing is left to end
            return
