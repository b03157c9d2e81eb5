"""Keeping tile actors busy: the pool (replacing actors that die), the order tiles are dealt in, and what a
Ray failure means for the render (retry the tile elsewhere, or end with our own error)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import ray
from rasterio.windows import Window
from ray.exceptions import RayActorError, RayError, RayTaskError

from models.errors import GeoshipError, PermanentError, RenderError
from ray_render.grid import TileIndex

# Tries per job: a tile (or overview block) whose actor dies or whose read fails transiently gets this many
# chances in all.
TILE_ATTEMPTS = 3
# Tiles are dealt to actors in bands this many tiles wide, row by row within a band. A tile's halo reaches into
# the warp blocks of its neighbours, and an overview block reads four neighbouring tiles: an actor that renders
# the neighbours too finds them warped already, and keeps the overview's pixels on its own node.
LOCALITY_BAND_TILES = 8


class ActorPool:
    """The tile actors, replacing any that die so the render keeps its width; with a `reserve`, those still alive
    after a render that went well are kept for the next one (`ray_render.reserve`)."""

    def __init__(self, actors: list, make_actor: Callable[[], object], reserve=None, kind=None):
        self.actors, self._make = actors, make_actor
        self._reserve, self._kind = reserve, kind

    def replace(self, index: int) -> None:
        ray.kill(self.actors[index], no_restart=True)
        if self._reserve is not None:
            self._reserve.forget(self.actors[index])
        self.actors[index] = self._make()

    def other_than(self, index: int) -> int:
        """Another actor's index when there is one: a retried tile should not meet the same worker."""
        return (index + 1) % len(self.actors)

    def finish(self, went_well: bool) -> None:
        """The render is over. Its actors remove their spill files (on their own nodes; a dead actor's on the
        driver's node goes with the render's directory). After a render that went well, those that answer go
        back to the reserve; every other actor is killed, and waited for until it is gone, so that none still
        writes once the render has cleaned up."""
        keep = self._reserve is not None and went_well
        # `end` drops the spill file too. An actor runs its calls in order, so once it has answered, nothing of
        # this render runs on it any more.
        answered = _answers([actor.end.remote() if keep else actor.drop_spill.remote() for actor in self.actors])
        kept = [actor for actor, ok in zip(self.actors, answered, strict=True) if keep and ok]
        lost = [actor for actor, ok in zip(self.actors, answered, strict=True) if not (keep and ok)]
        if self._reserve is not None:
            self._reserve.give_back(kept, self._kind)
            for actor in lost:
                self._reserve.forget(actor)
        for actor in lost:
            ray.kill(actor)
        _answers([actor.__ray_ready__.remote() for actor in lost])  # dead, as asked


def _answers(refs: list, timeout: float = 30.0) -> list[bool]:
    """Whether each call answered within `timeout` seconds (a dead or stuck actor does not)."""
    answered = []
    for ref in refs:
        try:
            ray.get(ref, timeout=timeout)
            answered.append(True)
        except (RayError, ray.exceptions.GetTimeoutError):
            answered.append(False)
    return answered


class TileQueues:
    """Which tile each actor renders next: one queue shared by all, or, with `band_tiles`, each actor its own
    bands of that many tile columns (dealt in turn), row by row within a band. An actor whose queue runs dry
    takes from the far end of the fullest one, so no actor idles while tiles remain."""

    def __init__(self, tiles: list[tuple[TileIndex, Window]], actors: int, band_tiles: int | None = None):
        self.tiles = tiles
        if band_tiles is None:
            self._queues = [deque(tiles)]
            return
        bands: dict[int, list] = {}
        for tile in tiles:
            bands.setdefault(tile[0].col // band_tiles, []).append(tile)
        self._queues = [deque() for _ in range(actors)]
        for n, band in enumerate(sorted(bands)):
            self._queues[n % actors].extend(sorted(bands[band], key=lambda t: (t[0].row, t[0].col)))

    def __len__(self) -> int:
        return len(self.tiles)

    def next_for(self, actor: int) -> tuple[TileIndex, Window] | None:
        """The next tile for `actor`, or None when every tile has been handed out."""
        own = self._queues[actor % len(self._queues)]
        if own:
            return own.popleft()
        fullest = max(self._queues, key=len)
        return fullest.pop() if fullest else None


def translate(exc: RayError) -> Exception:
    """Ray's wrappers carry tracebacks and terminal colours; callers get our own error with a plain message."""
    cause = exc.cause if isinstance(exc, RayTaskError) else None
    if isinstance(cause, GeoshipError):
        return cause
    if isinstance(exc, RayActorError):
        return RenderError(f"a tile actor died while rendering: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if cause is not None:
        return RenderError(f"rendering a tile failed: {type(cause).__name__}: {cause}")
    return RenderError(f"rendering failed: {type(exc).__name__}")


def is_permanent(exc: RayError) -> bool:
    """A tile error that retrying cannot fix: bad input, a refused request."""
    return isinstance(exc, RayTaskError) and isinstance(exc.cause, PermanentError)
