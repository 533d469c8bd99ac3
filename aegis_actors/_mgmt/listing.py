"""`DefinitionIndex`: every definition sorted by name, in memory, current at every read.

Why not read the bucket at every `services.list`: nats-py spends about 30 µs
per message it receives, so reading 1,000 definitions costs ~30 ms however
they are fetched (a watch, or a batched direct get). The index keeps the
definitions in memory and pays for what changed only.

Why it is never stale: before answering, it asks the stream for its last
revision (one round trip to the stream's leader, ~0.5 ms) and catches up to
it. Every write acknowledged before the list request is at or below that
revision, so a list reflects every write that came before it, whichever
`aegis-mgmt` instance took the write. Catching up reads the new revisions by
sequence with direct gets, concurrently (no consumer is created); when the gap
is large, or a revision in it is gone (history limit, purge), it reloads the
whole bucket instead.
"""

from __future__ import annotations

import bisect
from typing import Final

import anyio
import structlog
from pydantic_core import to_json

from aegis_actors._errors import StoreError
from aegis_actors._kv import Entry, KVBucket
from aegis_actors._mgmt.definitions import decode, encode
from aegis_actors._pagination import cursor_of, fitting, key_of

log = structlog.get_logger("aegis_actors.mgmt.listing")

#: Past this many new revisions, one replay of the bucket beats a get per revision.
MAX_CATCH_UP: Final = 256


class DefinitionIndex:
    """The definitions of one bucket, sorted by name, as canonical JSON."""

    def __init__(self, bucket: KVBucket, *, max_catch_up: int = MAX_CATCH_UP) -> None:
        self.bucket = bucket
        self.max_catch_up = max_catch_up
        self.revision = 0
        """Every write up to this bucket revision is reflected here."""
        self.reloads = 0
        """How many times the whole bucket was read (for tests and statistics)."""
        self._created: str | None = None
        """Which incarnation of the bucket the index holds (its stream's creation time)."""
        self._loaded = False
        self._names: list[str] = []
        self._items: dict[str, tuple[int, bytes]] = {}
        self._lock = anyio.Lock()

    def __len__(self) -> int:
        return len(self._names)

    async def page(self, limit: int, cursor: str | None, max_bytes: int) -> bytes:
        """The JSON of one `services.list` page, current as of this call.

        Up to `limit` definitions after `cursor`, as `{"items": [...], "nextCursor": ...}`,
        cut short to stay within `max_bytes` (a NATS message's limit).
        """
        await self.refresh()
        return self._page(limit, cursor, max_bytes)

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
        entries = await self.bucket.entries()  # reflects at least revision `last`
        self.revision = 0
        self._names, self._items = [], {}
        for entry in sorted(entries, key=lambda e: e.revision):
            self._apply(entry)
        # `last`, not the newest revision seen: deletes after `last` were not
        # replayed, and the next catch-up reads them (applying in order is idempotent).
        self.revision = last
        self._loaded = True
        self.reloads += 1

    async def _catch_up(self, last: int) -> bool:
        """Apply revisions (self.revision, last]; False if one of them is gone."""
        first = self.revision + 1
        found: list[Entry | None] = [None] * (last - self.revision)

        async def fetch(revision: int) -> None:
            found[revision - first] = await self.bucket.at(revision)

        async with anyio.create_task_group() as tg:
            for revision in range(first, last + 1):
                tg.start_soon(fetch, revision)
        if any(entry is None for entry in found):
            return False
        for entry in found:
            assert entry is not None
            self._apply(entry)
        self.revision = last
        return True

    def _apply(self, entry: Entry) -> None:
        known = self._items.get(entry.key)
        if known is not None and known[0] >= entry.revision:
            return  # already newer (a reload may run ahead of `revision`)
        value: bytes | None = None
        if not entry.deleted:
            try:
                value = encode(decode(entry))
            except StoreError as exc:
                log.warning("skipping a definition that does not parse", error=str(exc))
        if value is None:
            if known is not None:
                del self._items[entry.key]
                del self._names[bisect.bisect_left(self._names, entry.key)]
            return
        if known is None:
            bisect.insort(self._names, entry.key)
        self._items[entry.key] = (entry.revision, value)

    def _page(self, limit: int, cursor: str | None, max_bytes: int) -> bytes:
        names = self._names
        start = bisect.bisect_right(names, key_of(cursor, 1)[0]) if cursor is not None else 0
        parts = [self._items[name][1] for name in names[start : start + limit]]
        # The envelope around the items, with room for the longest cursor: 128 bytes.
        kept = fitting(map(len, parts), max_bytes - 128)
        parts = parts[:kept]
        end = start + len(parts)
        next_cursor = cursor_of((names[end - 1],)) if parts and end < len(names) else None
        return b'{"items":[%s],"nextCursor":%s}' % (b",".join(parts), to_json(next_cursor))
