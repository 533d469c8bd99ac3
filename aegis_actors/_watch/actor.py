"""`KVWatchActor`: a live view of KV keys, told to subscriber actors as messages.

Generic over buckets and key filters (the registry now; definitions and
configurations later). What a subscriber sees:

- `KeyChanged` once per new revision of a live key;
- `KeyRemoved` when a key is deleted, purged or expires (its TTL ran out);
- `WatchSynced(synced=True, keys=...)` after every full read, naming every
  live key: anything else the subscriber holds is a ghost it may drop;
  `WatchSynced(synced=False)` when the watch broke or the connection dropped:
  what the subscriber holds may be stale until the next synced message.

The watch breaks silently after a server restart (nats.py #510), so the actor
checks it: a reconnect (`ConnectionChanged` from the `ConnectionActor`), a gap
in the delivery sequence, or a watch that stays silent longer than two idle
heartbeats all lead to a resync: the old consumer is deleted, a new one
replays the last entry of every key, and the replay is diffed against what
subscribers were told. So they get exactly the changes they missed: no ghost,
no missing key, no duplicate. A failed resync is retried with backoff.

A subscriber's first message is a `WatchState` (every live key: replace what
you hold), then the changes. Everything reaches subscribers by `tell`, never
as the answer to an `ask`: a subscriber never waits on the watch while the
watch waits for room in the subscriber's mailbox.

Subscribers are kept in a `WatchTopic` owned by whoever builds the tree, so a
restarted watch actor still knows them (and they still find it); its first
`WatchSynced` then lets them drop keys removed while it was down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import structlog

from aegis_actors._actor import Actor
from aegis_actors._backoff import Backoff
from aegis_actors._child_spec import ChildSpec
from aegis_actors._connection import Connection, ConnectionChanged, WatchConnection
from aegis_actors._errors import StoreUnavailableError
from aegis_actors._instance import DEFAULT_KV_TIMEOUT
from aegis_actors._kv import BucketSpec, KVBucket
from aegis_actors._ref import ActorRef, Terminated
from aegis_actors._transport import NatsClient
from aegis_actors._watch.key_watch import KeyWatch, Operation, Update, WatchBroken, WatchEntry
from aegis_actors._watch.messages import (
    GetWatchStatistics,
    KeyChanged,
    KeyRemoved,
    Removal,
    Subscribe,
    Unsubscribe,
    WatchState,
    WatchStatistics,
    WatchSynced,
    WatchTopic,
)

log = structlog.get_logger("aegis_actors.watch")

#: A watch silent for longer than this many idle heartbeats has lost its consumer.
MISSED_HEARTBEATS: Final = 2
DEFAULT_REPLAY_TIMEOUT: Final = 10.0

_REMOVAL: Final = {
    Operation.DELETE: Removal.DELETED,
    Operation.PURGE: Removal.PURGED,
    Operation.EXPIRED: Removal.EXPIRED,
}


# -- the actor's own messages -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Update:
    generation: int
    update: Update


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Retry:
    token: object


class KVWatchActor(Actor):
    """Watches `keys` of a bucket and tells every subscriber what changed.

    Example:

        topic = WatchTopic()
        watch = await system.spawn(
            lambda: KVWatchActor(client, registry_bucket_spec(Buckets()), topic=topic),
            name="kv-watch",
        )
        await topic.subscribe(my_actor)  # WatchState, then KeyChanged / KeyRemoved / WatchSynced
    """

    def __init__(
        self,
        client: NatsClient,
        bucket: BucketSpec,
        keys: str = ">",
        *,
        topic: WatchTopic | None = None,
        connection: ActorRef | None = None,
        idle_heartbeat: float = 2.0,
        kv_timeout: float = DEFAULT_KV_TIMEOUT,
        replay_timeout: float = DEFAULT_REPLAY_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        if idle_heartbeat <= 0:
            raise ValueError(f"idle_heartbeat must be > 0 seconds, got {idle_heartbeat}")
        self.client = client
        self.spec = bucket
        self.keys = keys
        self.topic = topic if topic is not None else WatchTopic()
        self.connection = connection
        self.idle_heartbeat = idle_heartbeat
        self.kv_timeout = kv_timeout
        self.replay_timeout = replay_timeout
        self.backoff = backoff if backoff is not None else Backoff(base=0.1, cap=5.0)
        self._bucket: KVBucket | None = None
        self._watch: KeyWatch | None = None
        self._generation = 0
        self._known: dict[str, KeyChanged] = {}
        self._synced = False
        self._syncs = 0
        self._failures = 0
        self._retry: object | None = None
        self._updates = 0
        self._last_lag: float | None = None
        self._max_lag: float | None = None
        self._pending = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def on_start(self) -> None:
        self.topic.source = self.actor_ref
        for ref in self.topic.subscribers:
            self.actor_watch(ref)
        if self.connection is not None:
            await self.connection.tell(WatchConnection(self.actor_ref))
        # Ready = synced when the store answers; if it does not, the instance
        # still starts, and the retries below catch up.
        await self._sync("start")
        self.actor_timer(self.idle_heartbeat, _Tick())

    async def on_stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.stop()

    # -- messages -----------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Update):
            if message.generation == self._generation:
                await self._apply(message.update)
        elif isinstance(message, _Tick):
            await self._check_liveness()
            self.actor_timer(self.idle_heartbeat, _Tick())
        elif isinstance(message, _Retry):
            if message.token is self._retry:
                await self._sync("retry")
        elif isinstance(message, ConnectionChanged):
            if message.connected:
                await self._sync("reconnected")
            else:
                await self._stale("disconnected")
        elif isinstance(message, Subscribe):
            if message.ref not in self.topic.subscribers:
                self.topic.subscribers.append(message.ref)
            self.actor_watch(message.ref)
            await message.ref.tell(
                WatchState(self.spec.name, tuple(self._known.values()), self._synced)
            )
        elif isinstance(message, Unsubscribe | Terminated):
            if message.ref in self.topic.subscribers:
                self.topic.subscribers.remove(message.ref)
            self.actor_unwatch(message.ref)
        elif isinstance(message, GetWatchStatistics):
            return self.statistics()
        else:
            return await super().on_receive(message)
        return None

    def statistics(self) -> WatchStatistics:
        watch = self._watch
        return WatchStatistics(
            bucket=self.spec.name,
            keys=self.keys,
            synced=self._synced,
            live_keys=len(self._known),
            updates=self._updates,
            resyncs=max(0, self._syncs - 1),
            consumer=watch.consumer if watch is not None else None,
            last_lag=self._last_lag,
            max_lag=self._max_lag,
            pending=self._pending,
            subscribers=len(self.topic.subscribers),
        )

    # -- keeping the view ---------------------------------------------------------------

    async def _apply(self, update: Update) -> None:
        if isinstance(update, WatchBroken):
            await self._sync(f"broken: {update.reason}")
            return
        self._updates += 1
        lag = max(0.0, time.time() - update.written_at)
        self._last_lag = lag
        self._max_lag = lag if self._max_lag is None else max(self._max_lag, lag)
        self._pending = update.pending
        key = update.key
        known = self._known.get(key)
        if update.operation is Operation.PUT:
            if known is not None and known.revision >= update.revision:
                return  # told already (the replay of a resync got there first)
            changed = self._changed(update)
            self._known[key] = changed
            await self._emit(changed)
        elif known is not None and known.revision < update.revision:
            del self._known[key]
            await self._emit(
                KeyRemoved(self.spec.name, key, update.revision, _REMOVAL[update.operation])
            )

    def _changed(self, entry: WatchEntry) -> KeyChanged:
        return KeyChanged(self.spec.name, entry.key, entry.value, entry.revision, entry.written_at)

    async def _sync(self, reason: str) -> None:
        """Start a new watch and tell subscribers what changed since the last one."""
        self._retry = None
        if not self.client.is_connected:
            self._failures += 1
            await self._stale(reason)
            self._schedule_retry()  # the reconnect comes first, usually
            return
        try:
            entries = await self._rewatch()
        except StoreUnavailableError as exc:
            # A deleted bucket looks unreachable too: open (and so create) it
            # again at the next attempt, as the heartbeat does.
            self._bucket = None
            self._failures += 1
            self.actor_log.warning(
                "watch failed",
                keys=self.keys,
                reason=reason,
                error=str(exc),
                failures=self._failures,
            )
            await self._stale(reason)
            self._schedule_retry()
            return
        if self._syncs:
            self.actor_log.info("watch resynced", keys=self.keys, reason=reason)
        self._syncs += 1
        self._failures = 0
        await self._reconcile(entries)

    async def _rewatch(self) -> list[WatchEntry]:
        self._generation += 1
        generation = self._generation
        old, self._watch = self._watch, None
        if old is not None:
            await old.stop()
        if self._bucket is None:
            js = self.client.jetstream(timeout=self.kv_timeout)
            self._bucket = await KVBucket.ensure(js, self.spec)
        ref = self.actor_ref

        async def on_update(update: Update) -> None:
            await ref.tell(_Update(generation, update))

        watch = KeyWatch(
            self.client,
            self._bucket,
            self.keys,
            on_update=on_update,
            idle_heartbeat=self.idle_heartbeat,
            op_timeout=self.kv_timeout,
        )
        entries = await watch.start(timeout=self.replay_timeout)
        self._watch = watch
        return entries

    async def _reconcile(self, entries: list[WatchEntry]) -> None:
        live = {e.key: e for e in entries if e.operation is Operation.PUT}
        tombstones = {e.key: e for e in entries if e.operation is not Operation.PUT}
        told: list[KeyChanged | KeyRemoved] = []
        known: dict[str, KeyChanged] = {}
        for key, entry in live.items():
            before = self._known.get(key)
            # The value too: a bucket deleted and made again counts revisions from 1.
            if before is not None and (before.revision, before.value) == (
                entry.revision,
                entry.value,
            ):
                known[key] = before
            else:
                known[key] = self._changed(entry)
                told.append(known[key])
        for key in self._known.keys() - live.keys():
            tombstone = tombstones.get(key)
            if tombstone is None:
                told.append(KeyRemoved(self.spec.name, key, 0, Removal.VANISHED))
            else:
                reason = _REMOVAL[tombstone.operation]
                told.append(KeyRemoved(self.spec.name, key, tombstone.revision, reason))
        self._known = known
        self._synced = True
        for message in told:
            await self._emit(message)
        await self._emit(WatchSynced(self.spec.name, True, frozenset(known)))

    async def _stale(self, reason: str) -> None:
        if self._synced:
            self._synced = False
            self.actor_log.info("watch stale", keys=self.keys, reason=reason)
            await self._emit(WatchSynced(self.spec.name, False, frozenset()))

    def _schedule_retry(self) -> None:
        token = self._retry = object()
        self.actor_timer(self.backoff.delay(self._failures), _Retry(token))

    async def _check_liveness(self) -> None:
        watch = self._watch
        if watch is None or self._retry is not None:
            return
        silent = time.monotonic() - watch.last_activity
        if silent > MISSED_HEARTBEATS * self.idle_heartbeat:
            await self._sync(f"silent for {silent:.1f} s")

    async def _emit(self, message: KeyChanged | KeyRemoved | WatchSynced) -> None:
        for ref in list(self.topic.subscribers):
            await ref.tell(message)


def watch_child(
    child_id: str,
    connection: Connection,
    bucket: BucketSpec,
    keys: str,
    topic: WatchTopic,
    *,
    idle_heartbeat: float,
    kv_timeout: float,
) -> ChildSpec:
    """The child spec of a `KVWatchActor` in a tree whose actors share one `Connection`.

    The connection child starts first, so the watch takes its client (and
    asks it for `ConnectionChanged`) when it starts.
    """

    def start() -> Actor:
        return KVWatchActor(
            connection.client,
            bucket,
            keys,
            topic=topic,
            connection=connection.actor,
            idle_heartbeat=idle_heartbeat,
            kv_timeout=kv_timeout,
        )

    return ChildSpec(child_id, start, shutdown=kv_timeout + 1.0)
