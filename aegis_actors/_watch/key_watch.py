"""`KeyWatch`: one watch of KV keys, as an ordered push consumer we run ourselves.

Why not nats-py's `KeyValue.watch()`: its watcher can stop silently after a
server restart (nats.py #510) and recreates consumers in background tasks we
cannot observe; and it reports nothing we could check liveness with. Here a
watch is one ephemeral consumer (memory storage, one replica, no acks, flow
control and idle heartbeats: what every client's "ordered consumer" is) that
delivers the last entry of every key, then every change. The watch:

- classifies each entry by `KV-Operation` *and* `Nats-Marker-Reason`, so a
  TTL expiry is an `EXPIRED` removal, never a put (nats.py #966);
- answers flow control and stalled-consumer heartbeats itself;
- checks the consumer sequence of every delivery and the `Nats-Last-Consumer`
  of every heartbeat: a gap means entries were lost, and it reports
  `WatchBroken` instead of guessing;
- records `last_activity`, so its owner can tell a silent watch (heartbeats
  stopped: the consumer is gone) from an idle one;
- deletes its consumer on `stop()`, and sets a short `inactive_threshold` as
  a backstop, so re-watching never leaks consumers (one cluster reached 587
  consumers on one KV stream without it: docs/design.md).

It never repairs itself: the owner (`KVWatchActor`) starts a new watch and
resynchronises.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import anyio
import nats.errors
import nats.js.errors
import structlog
from nats.js import api

from aegis_actors._errors import StoreUnavailableError
from aegis_actors._kv import MARKER_REASON_HEADER, OPERATION_HEADER, KVBucket, kv_call
from aegis_actors._transport import (
    NATS_ERRORS,
    Msg,
    NatsClient,
    Subscription,
    close_subscriptions,
)

log = structlog.get_logger("aegis_actors.kv_watch")

STATUS_HEADER: Final = "Status"
CONTROL_STATUS: Final = "100"  # idle heartbeat or flow control request
LAST_CONSUMER_HEADER: Final = "Nats-Last-Consumer"
STALLED_HEADER: Final = "Nats-Consumer-Stalled"
#: A consumer nobody listens to is removed by the server after this long (at least).
MIN_INACTIVE_THRESHOLD: Final = 10.0
#: Entries the client may buffer for the watch before it drops them (a gap, then a resync).
PENDING_MSGS_LIMIT: Final = 256 * 1024
PENDING_BYTES_LIMIT: Final = 256 * 1024 * 1024


class Operation(StrEnum):
    """What one entry of a watch did to its key."""

    PUT = "PUT"
    DELETE = "DELETE"
    PURGE = "PURGE"
    EXPIRED = "EXPIRED"
    """The key's TTL ran out (a server-placed marker, `Nats-Marker-Reason: MaxAge`)."""


def operation_of(headers: dict[str, str] | None) -> Operation:
    """Classify an entry by `KV-Operation` and `Nats-Marker-Reason` (markers have only that)."""
    if not headers:
        return Operation.PUT
    operation = headers.get(OPERATION_HEADER)
    if operation == "DEL":
        return Operation.DELETE
    if operation == "PURGE":
        return Operation.PURGE
    reason = headers.get(MARKER_REASON_HEADER)
    if reason is None:
        return Operation.PUT
    if reason == "MaxAge":
        return Operation.EXPIRED
    if reason == "Purge":
        return Operation.PURGE
    # "Remove", or a reason newer than this code: a marker always means the key is gone.
    return Operation.DELETE


@dataclass(frozen=True, slots=True)
class WatchEntry:
    """One revision of a key, as a watch delivers it."""

    key: str
    value: bytes
    revision: int
    operation: Operation
    written_at: float
    """Unix time at which the server stored the entry."""
    pending: int
    """Entries the server still held for this watch after this one."""


@dataclass(frozen=True, slots=True)
class WatchBroken:
    """The watch lost entries or its consumer; it delivers nothing more."""

    reason: str


Update = WatchEntry | WatchBroken
OnUpdate = Callable[[Update], Awaitable[None]]


class KeyWatch:
    """One consumer over `keys` of `bucket`: `start()` returns the replay, then updates flow."""

    def __init__(
        self,
        client: NatsClient,
        bucket: KVBucket,
        keys: str,
        *,
        on_update: OnUpdate,
        idle_heartbeat: float = 2.0,
        op_timeout: float = 2.0,
    ) -> None:
        if idle_heartbeat <= 0:
            raise ValueError(f"idle_heartbeat must be > 0 seconds, got {idle_heartbeat}")
        self.client = client
        self.bucket = bucket
        self.keys = keys
        self.idle_heartbeat = idle_heartbeat
        self.op_timeout = op_timeout
        self.consumer: str | None = None
        self.last_activity = time.monotonic()
        self._on_update = on_update
        self._cut = len(bucket.prefix)
        self._sequence = 0
        self._live = False
        self._replay: list[WatchEntry] = []
        self._replayed = anyio.Event()
        self._broken: str | None = None
        self._sub: Subscription | None = None

    async def start(self, *, timeout: float) -> list[WatchEntry]:
        """Create the consumer and return the last entry of every key (tombstones too).

        Entries written after the replay go to `on_update`, in order.

        Raises:
            StoreUnavailableError: JetStream did not answer, or the replay did
                not finish within `timeout` seconds, or broke.
        """
        inbox = self.client.new_inbox()
        try:
            self._sub = await self.client.subscribe(
                inbox,
                cb=self._on_msg,
                pending_msgs_limit=PENDING_MSGS_LIMIT,
                pending_bytes_limit=PENDING_BYTES_LIMIT,
            )
        except NATS_ERRORS as exc:  # a closed or draining connection
            raise StoreUnavailableError(f"cannot watch {self.bucket.name}: {exc!r}") from exc
        try:
            config = api.ConsumerConfig(
                description=f"aegis watch of {self.keys}",
                deliver_subject=inbox,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                filter_subject=self.bucket.prefix + self.keys,
                ack_policy=api.AckPolicy.NONE,
                max_deliver=1,
                flow_control=True,
                idle_heartbeat=self.idle_heartbeat,
                mem_storage=True,
                num_replicas=1,
                inactive_threshold=max(MIN_INACTIVE_THRESHOLD, 5 * self.idle_heartbeat),
            )
            async with kv_call(self.bucket.js, self.bucket.name, self.keys):
                try:
                    info = await self.bucket.js.add_consumer(
                        self.bucket.stream, config=config, timeout=self.op_timeout
                    )
                except nats.js.errors.NotFoundError as exc:
                    raise StoreUnavailableError(
                        f"bucket {self.bucket.name} is gone (deleted?): {exc}"
                    ) from exc
            self.consumer = info.name
            delivered = info.delivered.consumer_seq if info.delivered else 0
            if not info.num_pending and not delivered:
                self._finish_replay()  # nothing to replay, nothing on its way
            with anyio.fail_after(timeout):
                await self._replayed.wait()
        except TimeoutError:
            await self.stop()
            raise StoreUnavailableError(
                f"the watch of {self.bucket.name}/{self.keys} did not replay within {timeout:g} s"
            ) from None
        except BaseException:
            await self.stop()
            raise
        if self._broken is not None:
            reason = self._broken
            await self.stop()
            raise StoreUnavailableError(f"the watch of {self.bucket.name} broke: {reason}")
        return self._replay

    async def stop(self) -> None:
        """Unsubscribe and delete the consumer (best effort: the server also expires it)."""
        self._broken = self._broken or "stopped"
        sub, self._sub = self._sub, None
        consumer, self.consumer = self.consumer, None
        if sub is not None:
            await close_subscriptions([sub])
        if consumer is not None and not self.client.is_closed:
            # Bounded: after a server restart the consumer is simply gone, and
            # a server that does not answer must not hold up the resync.
            with anyio.move_on_after(min(self.op_timeout, 1.0)):
                try:
                    await self.bucket.js.delete_consumer(self.bucket.stream, consumer)
                except (
                    Exception
                ) as exc:  # gone already, or unreachable: inactive_threshold cleans up
                    log.debug("watch consumer not deleted", consumer=consumer, error=repr(exc))

    # -- deliveries (run in the subscription's task, one at a time) -----------------

    async def _on_msg(self, msg: Msg) -> None:
        self.last_activity = time.monotonic()
        if self._broken is not None:
            return
        headers = msg.headers
        if headers is not None and headers.get(STATUS_HEADER) == CONTROL_STATUS:
            await self._control(msg, headers)
            return
        try:
            meta = msg.metadata
        except nats.errors.NotJSMessageError:
            return  # not from a consumer: nothing we asked for
        sequence = meta.sequence.consumer
        if sequence != self._sequence + 1:
            await self._break(f"expected delivery {self._sequence + 1}, got {sequence}")
            return
        self._sequence = sequence
        entry = WatchEntry(
            key=msg.subject[self._cut :],
            value=msg.data,
            revision=meta.sequence.stream,
            operation=operation_of(headers),
            written_at=meta.timestamp.timestamp(),
            pending=meta.num_pending,
        )
        if self._live:
            await self._on_update(entry)
            return
        self._replay.append(entry)
        if meta.num_pending == 0:
            self._finish_replay()

    async def _control(self, msg: Msg, headers: dict[str, str]) -> None:
        # A flow control request carries a reply subject; a heartbeat of a
        # consumer stalled on flow control names the subject to unstall it.
        for subject in (msg.reply, headers.get(STALLED_HEADER)):
            if subject:
                try:
                    await self.client.publish(subject, b"")
                except NATS_ERRORS as exc:
                    log.debug("flow control reply failed", error=repr(exc))
        last = headers.get(LAST_CONSUMER_HEADER)
        if last is not None and last.isdigit() and int(last) != self._sequence:
            await self._break(f"the server delivered {last} entries, {self._sequence} arrived")

    def _finish_replay(self) -> None:
        self._live = True
        self._replayed.set()

    async def _break(self, reason: str) -> None:
        self._broken = reason
        if self._live:
            await self._on_update(WatchBroken(reason))
        else:
            self._replayed.set()
