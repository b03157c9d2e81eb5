"""Where the pixels an overview block still needs are, as the driver of a block render knows it.

A tile actor keeps the pixels of each tile and overview block it made in its own memory until every block above
has read them: a reduction sent to that actor reads them there, without a copy. Only a reduction whose pieces were
made by different actors needs some of them shared: copied into Ray's object store on the maker's node, as a
value the driver owns and never fetches. An actor that dies takes what it held with it; what is still needed and
was not shared is made again (`cog_render.BlockRender`).
"""

from __future__ import annotations

from collections import Counter

from ray_render.pyramid import UnitKey

Key = tuple[str, UnitKey]  # (the COG's name, the unit)


class Holdings:
    """Which actor holds each unit's pixels, which were shared (their object references), and what each actor
    may let go of, told with its next call."""

    def __init__(self):
        self._held_by: dict[Key, int] = {}
        self.shared: dict[Key, object] = {}
        self._drops: dict[int, list[Key]] = {}

    def hold(self, key: Key, actor: int) -> None:
        self._held_by[key] = actor

    def holder(self, key: Key) -> int | None:
        return self._held_by.get(key)

    def available(self, key: Key) -> bool:
        """Whether the unit's pixels exist somewhere: with a live actor, or shared."""
        return key in self._held_by or key in self.shared

    def counts(self, keys: list[Key]) -> Counter:
        """How many of `keys` each actor holds."""
        return Counter(self._held_by[key] for key in keys if key in self._held_by)

    def release(self, key: Key) -> None:
        """Nothing reads the unit any more: its holder lets it go (with its next call), its shared copy goes."""
        actor = self._held_by.pop(key, None)
        if actor is not None:
            self._drops.setdefault(actor, []).append(key)
        self.shared.pop(key, None)

    def drops_for(self, actor: int) -> list[Key]:
        """What `actor` may let go of now (handed over once)."""
        return self._drops.pop(actor, [])

    def lose(self, actor: int) -> None:
        """The actor died (or was replaced): what it held is gone, except what it had shared."""
        for key in [key for key, holder in self._held_by.items() if holder == actor]:
            del self._held_by[key]
        self._drops.pop(actor, None)
