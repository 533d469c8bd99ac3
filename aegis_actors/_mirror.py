"""`BucketMirror`: every live key of a bucket, parsed, in memory, current at every read.

Why not read the bucket at every list: nats-py spends 30-60 µs on each
message it receives (mostly parsing its headers), so reading 1,000 records
costs tens of milliseconds however they are fetched, and a list walked a
page at a time would read them once per page. A mirror pays for what
changed only.

Why it is never stale: `refresh()` asks the stream for its last revision
(one round trip to the stream's leader, ~0.5 ms) and catches up to it.
Every write acknowledged before the refresh is at or below that revision, so
what the mirror holds reflects every write that came before, whichever
process made it. Catching up reads the new revisions in one batched
direct get (no consumer is created); when the gap is large, or a revision
in it is gone (history limit, purge), it reads the whole bucket again
instead. Each key is held once, at its newest revision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Generic, TypeVar

import anyio

from aegis_actors._kv import Entry, KVBucket

V = TypeVar("V")

#: Past this many new revisions, one read of the bucket beats a get per revision.
MAX_CATCH_UP: Final = 256


class BucketMirror(Generic[V]):
    """The live keys of one bucket, each as `parse(entry)` (None: not held, e.g. unreadable)."""

    def __init__(
        self,
        bucket: KVBucket,
        parse: Callable[[Entry], V | None],
        *,
        max_catch_up: int = MAX_CATCH_UP,
    ) -> None:
        self.bucket = bucket
        self.parse = parse
        self.max_catch_up = max_catch_up
        self.revision = 0
        """Every write up to this bucket revision is reflected here."""
        self.reloads = 0
        """How many times the whole bucket was read (for tests and statistics)."""
        self.changes = 0
        """Bumped whenever what the mirror holds changes (for views derived from it)."""
        self._created: str | None = None
        """Which incarnation of the bucket the mirror holds (its stream's creation time)."""
        self._loaded = False
        self._items: dict[str, tuple[int, V]] = {}
        self._gone: dict[str, int] = {}
        """Keys deleted (or unreadable) at a revision past `revision`: an older write of
        theirs, read late by a catch-up, must not bring them back."""
        self._lock = anyio.Lock()

    @property
    def items(self) -> Mapping[str, tuple[int, V]]:
        """Key -> (revision, parsed value), as of the last `refresh()`."""
        return self._items

    async def refresh(self) -> None:
        """Catch up with every write the bucket acknowledged before this call."""
        position = await self.bucket.position()
        last = position.revision
        if self._loaded and position.created == self._created and last <= self.revision:
            return
        async with self._lock:
            if position.created != self._created:
                # Deleted and made again (by hand, or by another instance):
                # its revisions start over, so nothing held here applies.
                self._loaded, self.revision, self._created = False, 0, position.created
            if self._loaded and last <= self.revision:
                return  # another caller caught up while we waited
            small_gap = self._loaded and last - self.revision <= self.max_catch_up
            if not (small_gap and await self._catch_up(last)):
                await self._reload(last)

    async def _reload(self, last: int) -> None:
        entries = await self.bucket.latest()  # reflects at least revision `last`
        self._items, self._gone = {}, {}
        for entry in entries:
            self._apply(entry)
        # `last`, not the newest revision seen: writes after `last` may be half
        # seen, and the next catch-up reads them (applying in order is idempotent).
        self._settle(last)
        self._loaded = True
        self.reloads += 1
        self.changes += 1

    async def _catch_up(self, last: int) -> bool:
        """Apply revisions (self.revision, last]; False if one of them is gone."""
        first = self.revision + 1
        entries = await self.bucket.since(first, last)
        kept = {entry.revision for entry in entries}
        if any(revision not in kept for revision in range(first, last + 1)):
            return False
        for entry in entries:
            self._apply(entry)
        self._settle(last)
        return True

    def _settle(self, revision: int) -> None:
        self.revision = revision
        # Catch-ups only apply later revisions: these deletes can no longer be undone.
        self._gone = {key: gone for key, gone in self._gone.items() if gone > revision}

    def _apply(self, entry: Entry) -> None:
        held = self._items.get(entry.key)
        if max(held[0] if held else 0, self._gone.get(entry.key, 0)) >= entry.revision:
            return  # already newer (a reload may run ahead of `revision`)
        value = None if entry.deleted else self.parse(entry)
        if value is None:
            self._gone[entry.key] = entry.revision
            if self._items.pop(entry.key, None) is not None:
                self.changes += 1
            return
        self._gone.pop(entry.key, None)
        self._items[entry.key] = (entry.revision, value)
        self.changes += 1
