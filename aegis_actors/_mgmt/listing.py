"""`DefinitionIndex`: every definition sorted by name, in memory, current at every read.

A `BucketMirror` of the definitions bucket (see `aegis_actors._mirror` for
why a list never reads the whole bucket, and why it is never stale), held as
canonical JSON, with the names sorted once per change.
"""

from __future__ import annotations

import bisect

import structlog
from pydantic_core import to_json

from aegis_actors._errors import StoreError
from aegis_actors._kv import Entry, KVBucket
from aegis_actors._mgmt.definitions import decode, encode
from aegis_actors._mirror import MAX_CATCH_UP, BucketMirror
from aegis_actors._pagination import cursor_of, fitting, key_of

log = structlog.get_logger("aegis_actors.mgmt.listing")


def _definition_json(entry: Entry) -> bytes | None:
    try:
        return encode(decode(entry))
    except StoreError as exc:
        log.warning("skipping a definition that does not parse", error=str(exc))
        return None


class DefinitionIndex:
    """The definitions of one bucket, sorted by name, as canonical JSON."""

    def __init__(self, bucket: KVBucket, *, max_catch_up: int = MAX_CATCH_UP) -> None:
        self.bucket = bucket
        self.mirror = BucketMirror(bucket, _definition_json, max_catch_up=max_catch_up)
        self._names: list[str] = []
        self._sorted_at = -1

    @property
    def revision(self) -> int:
        """Every write up to this bucket revision is reflected here."""
        return self.mirror.revision

    @property
    def reloads(self) -> int:
        """How many times the whole bucket was read (for tests and statistics)."""
        return self.mirror.reloads

    def __len__(self) -> int:
        return len(self.mirror.items)

    async def page(self, limit: int, cursor: str | None, max_bytes: int) -> bytes:
        """The JSON of one `services.list` page, current as of this call.

        Up to `limit` definitions after `cursor`, as `{"items": [...], "nextCursor": ...}`,
        cut short to stay within `max_bytes` (a NATS message's limit).
        """
        await self.refresh()
        return self._page(limit, cursor, max_bytes)

    async def refresh(self) -> None:
        """Catch up with every write the bucket acknowledged before this call."""
        await self.mirror.refresh()

    def _page(self, limit: int, cursor: str | None, max_bytes: int) -> bytes:
        items = self.mirror.items
        if self._sorted_at != self.mirror.changes:
            self._names, self._sorted_at = sorted(items), self.mirror.changes
        names = self._names
        start = bisect.bisect_right(names, key_of(cursor, 1)[0]) if cursor is not None else 0
        parts = [items[name][1] for name in names[start : start + limit]]
        # The envelope around the items, with room for the longest cursor: 128 bytes.
        kept = fitting(map(len, parts), max_bytes - 128)
        parts = parts[:kept]
        end = start + len(parts)
        next_cursor = cursor_of((names[end - 1],)) if parts and end < len(names) else None
        return b'{"items":[%s],"nextCursor":%s}' % (b",".join(parts), to_json(next_cursor))
