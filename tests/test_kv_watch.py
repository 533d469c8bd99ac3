"""KVWatchActor: changes become messages; broken watches are resynchronised exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from nats.aio.client import Client

from aegis_actors import (
    Actor,
    ActorRef,
    ActorSystem,
    BucketSpec,
    ChildSpec,
    ConnectionSettings,
    KVBucket,
    NatsServer,
    Supervisor,
    WhichChildren,
    connect,
)
from aegis_actors._connection import ConnectionActor, ConnectionChanged
from aegis_actors._watch import (
    GetWatchStatistics,
    KeyChanged,
    KeyRemoved,
    KVWatchActor,
    WatchState,
    WatchStatistics,
    WatchSynced,
    WatchTopic,
)
from aegis_actors._watch.key_watch import Operation, operation_of
from tests.probes import Journal

pytestmark = pytest.mark.nats


class Subscriber(Actor):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    async def on_receive(self, message: Any) -> Any:
        self.journal.record(message)


def messages(journal: Journal, kind: type | None = None) -> list[Any]:
    return [e[0] for e in journal.events if kind is None or isinstance(e[0], kind)]


def changes(journal: Journal) -> list[tuple[str, str]]:
    """Puts and removals as ("put", key) / ("DELETED", key) ..., in order."""
    told = []
    for message in messages(journal):
        if isinstance(message, KeyChanged):
            told.append(("put", message.key))
        elif isinstance(message, KeyRemoved):
            told.append((message.reason.value, message.key))
    return told


@dataclass
class Watching:
    system: ActorSystem
    watch: ActorRef
    topic: WatchTopic
    journal: Journal

    async def statistics(self) -> WatchStatistics:
        stats: WatchStatistics = await self.watch.ask(GetWatchStatistics())
        return stats

    async def wait(self, predicate: Any, timeout: float = 5.0) -> None:
        await self.journal.wait_for(lambda _: predicate(), timeout)


@pytest.fixture
def spec(namespace: str) -> BucketSpec:
    return BucketSpec(name=f"{namespace}-watched", per_key_ttl=True, marker_ttl=60)


@pytest.fixture
async def bucket(nats_client: Client, spec: BucketSpec) -> KVBucket:
    return await KVBucket.ensure(nats_client.jetstream(), spec)


@asynccontextmanager
async def watching(
    client: Client,
    spec: BucketSpec,
    keys: str = ">",
    *,
    heartbeat: float = 2.0,
    connection: ActorRef | None = None,
    system: ActorSystem | None = None,
) -> AsyncIterator[Watching]:
    journal = Journal()
    topic = WatchTopic()

    def make() -> Actor:
        return KVWatchActor(
            client, spec, keys, topic=topic, idle_heartbeat=heartbeat, connection=connection
        )

    async with AsyncExitStack() as stack:
        if system is None:
            system = await stack.enter_async_context(ActorSystem())
        watch = await system.spawn(make, name="watch")
        subscriber = await system.spawn(lambda: Subscriber(journal), name="subscriber")
        await topic.subscribe(subscriber)
        await journal.wait_for(lambda events: bool(messages(journal, WatchState)))
        yield Watching(system, watch, topic, journal)


class TestChanges:
    """Every kind of change reaches a subscriber once, in order, correctly classified."""

    async def test_puts_deletes_purges_and_expiries_arrive_once_each(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        await bucket.put("a.1", b"one")
        async with watching(nats_client, spec) as w:
            (state,) = messages(w.journal, WatchState)
            assert [(e.key, e.value) for e in state.entries] == [("a.1", b"one")]
            assert state.synced
            await bucket.put("a.2", b"two")
            await bucket.put("a.1", b"uno")
            await bucket.delete("a.1")
            await bucket.put("a.3", b"three")
            kv = await nats_client.jetstream().key_value(spec.name)
            await kv.purge("a.3")
            await bucket.put("a.4", b"four", ttl=1)
            await w.wait(lambda: ("EXPIRED", "a.4") in changes(w.journal))
            assert changes(w.journal) == [
                ("put", "a.2"),
                ("put", "a.1"),
                ("DELETED", "a.1"),
                ("put", "a.3"),
                ("PURGED", "a.3"),
                ("put", "a.4"),
                ("EXPIRED", "a.4"),
            ]
            stats = await w.statistics()
        assert stats.synced
        assert stats.resyncs == 0
        assert stats.updates == 7
        assert stats.live_keys == 1
        assert stats.pending == 0
        assert stats.last_lag is not None
        assert stats.max_lag is not None
        assert 0 <= stats.last_lag <= stats.max_lag

    async def test_a_late_subscriber_first_gets_exactly_the_live_keys(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        async with watching(nats_client, spec) as w:
            await bucket.put("k.1", b"1")
            await bucket.put("k.2", b"2")
            await bucket.delete("k.1")
            await w.wait(lambda: ("DELETED", "k.1") in changes(w.journal))
            late = Journal()
            subscriber = await w.system.spawn(lambda: Subscriber(late), name="late")
            await w.topic.subscribe(subscriber)
            await late.wait_for(lambda events: bool(events))
            (first,) = [e[0] for e in late.events]
            assert isinstance(first, WatchState)
            assert [e.key for e in first.entries] == ["k.2"]
            assert (await w.statistics()).subscribers == 2

    async def test_keys_outside_the_filter_are_not_told(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        async with watching(nats_client, spec, "mine.>") as w:
            await bucket.put("theirs.1", b"x")
            await bucket.put("mine.1", b"y")
            await w.wait(lambda: ("put", "mine.1") in changes(w.journal))
            assert changes(w.journal) == [("put", "mine.1")]

    async def test_a_stopped_subscriber_is_forgotten(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        async with watching(nats_client, spec) as w:
            (subscriber,) = list(w.topic.subscribers)
            await w.system.stop(subscriber)
            assert (await w.statistics()).subscribers == 0

    def test_markers_are_classified_by_their_reason_not_as_puts(self) -> None:
        assert operation_of(None) is Operation.PUT
        assert operation_of({"Nats-TTL": "2s"}) is Operation.PUT
        assert operation_of({"KV-Operation": "DEL"}) is Operation.DELETE
        assert operation_of({"KV-Operation": "PURGE"}) is Operation.PURGE
        assert operation_of({"Nats-Marker-Reason": "MaxAge"}) is Operation.EXPIRED
        assert operation_of({"Nats-Marker-Reason": "Purge"}) is Operation.PURGE
        assert operation_of({"Nats-Marker-Reason": "Remove"}) is Operation.DELETE
        assert operation_of({"Nats-Marker-Reason": "Newer"}) is Operation.DELETE

    def test_a_heartbeat_of_zero_is_refused(self, nats_client: Client, spec: BucketSpec) -> None:
        with pytest.raises(ValueError, match="idle_heartbeat must be > 0"):
            KVWatchActor(nats_client, spec, idle_heartbeat=0)


class TestResync:
    """A broken watch is rebuilt; subscribers get exactly what they missed."""

    async def test_after_a_server_restart_no_ghost_no_missing_key_no_duplicate(
        self, own_nats_server: NatsServer, spec: BucketSpec
    ) -> None:
        writer = await connect(ConnectionSettings(url=own_nats_server.url))
        try:
            await self._restart_and_resync(own_nats_server, spec, writer)
        finally:
            await writer.close()

    async def _restart_and_resync(
        self, server: NatsServer, spec: BucketSpec, writer: Client
    ) -> None:
        bucket = await KVBucket.ensure(writer.jetstream(), spec)
        for key in ("x", "y", "w"):
            await bucket.put(key, key.encode())
        # The watch's own connection waits 0.5-1 s before reconnecting: the
        # writer makes its changes in that window, so only a resync can tell them.
        settings = ConnectionSettings(
            url=server.url, reconnect_wait_min=1.0, reconnect_wait_max=1.0
        )
        clients: list[Client] = []
        async with ActorSystem() as system:
            connection = await system.spawn(
                lambda: ConnectionActor(settings, on_connected=lambda c, _: clients.append(c)),
                name="conn",
            )
            async with watching(clients[0], spec, connection=connection, system=system) as w:
                await anyio.to_thread.run_sync(server.kill)
                await anyio.to_thread.run_sync(server.start)
                await writer.flush()  # the writer is back (it reconnects at once)
                await bucket.delete("y")
                await bucket.put("w", b"w2")
                await bucket.put("z", b"z")
                assert not clients[0].is_connected, "the changes must happen while away"
                await w.wait(lambda: len(messages(w.journal, WatchSynced)) >= 2, timeout=10)
                stale, synced = messages(w.journal, WatchSynced)
                stats = await w.statistics()
        assert not stale.synced
        assert synced.synced
        assert synced.keys == {"x", "w", "z"}
        assert sorted(changes(w.journal)) == [("DELETED", "y"), ("put", "w"), ("put", "z")]
        assert stats.resyncs == 1
        assert stats.synced

    async def test_a_watch_whose_consumer_vanished_is_found_silent_and_resynced(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        async with watching(nats_client, spec, heartbeat=0.2) as w:
            before = await w.statistics()
            assert before.consumer is not None
            await nats_client.jetstream().delete_consumer(bucket.stream, before.consumer)
            await bucket.put("missed", b"by the old consumer")
            await w.wait(lambda: ("put", "missed") in changes(w.journal))
            after = await w.statistics()
        assert after.resyncs == 1
        assert after.consumer not in (None, before.consumer)

    async def test_a_deleted_bucket_is_made_again_and_its_vanished_keys_are_told(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        await bucket.put("old", b"1")
        async with watching(nats_client, spec, heartbeat=0.2) as w:
            await nats_client.jetstream().delete_stream(bucket.stream)
            again = await KVBucket.ensure(nats_client.jetstream(), spec)
            await again.put("new", b"2")
            await w.wait(lambda: len(changes(w.journal)) >= 2)
            assert changes(w.journal) in (
                [("put", "new"), ("VANISHED", "old")],
                [("VANISHED", "old"), ("put", "new")],
            )

    async def test_resyncs_delete_the_consumers_they_replace(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        async with watching(nats_client, spec) as w:
            for _ in range(3):
                w.watch.send_system(ConnectionChanged(connected=True))
            stats = await w.statistics()  # after the system lane: after the resyncs
            consumers = await nats_client.jetstream().consumers_info(bucket.stream)
        assert stats.resyncs == 3
        assert [c.name for c in consumers] == [stats.consumer]

    async def test_a_restarted_watch_actor_keeps_its_subscribers(
        self, nats_client: Client, spec: BucketSpec, bucket: KVBucket
    ) -> None:
        journal = Journal()
        topic = WatchTopic()
        async with ActorSystem() as system:
            tree = await system.spawn(
                lambda: Supervisor(
                    [ChildSpec("watch", lambda: KVWatchActor(nats_client, spec, topic=topic))]
                ),
                name="tree",
            )
            subscriber = await system.spawn(lambda: Subscriber(journal), name="subscriber")
            await topic.subscribe(subscriber)
            await journal.wait_for(lambda _: bool(messages(journal, WatchState)))
            (child,) = await tree.ask(WhichChildren())
            child.ref.stop()  # a permanent child: its supervisor starts it again
            await journal.wait_for(lambda _: bool(messages(journal, WatchSynced)))
            await bucket.put("after", b"restart")
            await journal.wait_for(lambda _: ("put", "after") in changes(journal))
        (synced,) = messages(journal, WatchSynced)
        assert synced.synced
        assert synced.keys == frozenset()
