"""`@event(..., dedupe=N)`: skip an event a handler already finished, within N seconds.

JetStream stores an event id once within a stream's duplicate window, but
the same event can still reach a handler twice: its ack was lost, or its
instance died after the handler's work and before the ack. So a handler
that must not run twice for one event marks each event it finished in
bucket `aegis-event-dedupe` (key `{service}.{handler}.{eventId}`, with a
per-key TTL of N seconds), shared by the service's instances, and skips
the events it finds marked. The mark is made after the handler returned:
an instance that dies between the two lets the event run again, so the
handler's own writes should still be idempotent where it matters (see
docs/guides/events.md). Each event costs two KV operations.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable
from typing import Any, Final

from aegis_actors._buckets import Buckets, event_dedupe_key
from aegis_actors._errors import KeyExistsError
from aegis_actors._kv import BucketSpec, KVBucket
from aegis_actors._transport import JetStreamContext

_KEY_TOKEN: Final = re.compile(r"^[A-Za-z0-9_=-]{1,64}$")


def dedupe_bucket_spec(buckets: Buckets) -> BucketSpec:
    return BucketSpec(
        name=buckets.event_dedupe,
        description="aegis: events a handler finished (@event(dedupe=...)), per-key TTL",
        per_key_ttl=True,
    )


def _token(event_id: str) -> str:
    """The event id as one key token (hashed if it holds other characters)."""
    if _KEY_TOKEN.fullmatch(event_id):
        return event_id
    return hashlib.sha256(event_id.encode()).hexdigest()[:40]


class Deduper:
    """The finished-events marks of one service's handlers."""

    def __init__(self, js: JetStreamContext, buckets: Buckets, service: str) -> None:
        self.js = js
        self.spec = dedupe_bucket_spec(buckets)
        self.service = service
        self._bucket: KVBucket | None = None

    async def _open(self) -> KVBucket:
        if self._bucket is None:
            self._bucket = await KVBucket.ensure(self.js, self.spec)
        return self._bucket

    def key(self, handler: str, event_id: str) -> str:
        return event_dedupe_key(self.service, handler, _token(event_id))

    async def finished(self, handler: str, event_id: str) -> bool:
        """True if `handler` finished `event_id` within its window."""
        bucket = await self._open()
        return await bucket.get(self.key(handler, event_id)) is not None

    async def mark(self, handler: str, event_id: str, window: int) -> None:
        """Remember that `handler` finished `event_id`, for `window` seconds."""
        bucket = await self._open()
        # KeyExistsError: another instance finished it too, marked either way.
        with contextlib.suppress(KeyExistsError):
            await bucket.create(self.key(handler, event_id), b"", ttl=window)


class Marks:
    """The dedupe marks of one service's handlers, opened at first use; failures are logged.

    A check that fails says "not finished" (at least once beats at most once); a
    mark that fails leaves the event to run again if it comes again.
    """

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        buckets: Buckets,
        service: str,
        log: Callable[[], Any],
    ) -> None:
        self._js = js
        self._buckets = buckets
        self._service = service
        self._log = log
        self._deduper: Deduper | None = None

    def _open(self) -> Deduper:
        if self._deduper is None:
            self._deduper = Deduper(self._js(), self._buckets, self._service)
        return self._deduper

    async def finished(self, handler: str, event_id: str) -> bool:
        try:
            return await self._open().finished(handler, event_id)
        except Exception as exc:
            self._log().warning("dedupe check failed", handler=handler, error=repr(exc))
            return False

    async def mark(self, handler: str, event_id: str, window: int) -> None:
        try:
            await self._open().mark(handler, event_id, window)
        except Exception as exc:
            self._log().warning(
                "dedupe mark failed: the event may run again if delivered again",
                handler=handler,
                error=repr(exc),
            )
