"""The monitor's fleet view (`FleetActor`) on its own: what pages get, and slow pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from pydantic_core import from_json

from aegis_actors import ActorSystem, InstanceStatus, ServiceInstance
from aegis_actors._actor import Actor
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._models import utc_now
from aegis_actors._ref import ActorRef
from aegis_actors._subjects import Subjects
from aegis_actors._watch import KeyChanged, KeyRemoved, Removal, WatchState, WatchSynced
from aegis_actors._web import fleet as fleet_module
from aegis_actors._web.context import WebContext
from aegis_actors._web.fleet import FleetActor, Follow, Follower
from tests.web_support import in_own_task

BUCKETS = Buckets()


class Silent(Actor):
    """Stands in for the watches and the probe: takes every message, answers none."""

    async def on_receive(self, message: Any) -> Any:
        return None


def changed(service: str, n: int, revision: int) -> KeyChanged:
    instance_id = f"{service}-{n:08x}"
    record = ServiceInstance(
        service_name=service,
        instance_id=instance_id,
        version="1.0.0",
        status=InstanceStatus.ACTIVE,
        last_heartbeat=utc_now(),
    )
    value = record.model_dump_json(exclude_none=True).encode()
    return KeyChanged(BUCKETS.registry, instance_key(service, instance_id), value, revision, 0.0)


def events(data: bytes) -> list[tuple[str, Any]]:
    found = []
    for block in data.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            found.append((lines["event"], from_json(lines["data"])))
    return found


@asynccontextmanager
async def fleet_view() -> AsyncIterator[tuple[ActorRef, WebContext]]:
    ctx = WebContext(Subjects(), BUCKETS, stats_interval=60.0)
    async with ActorSystem() as system:
        for n, topic in enumerate((ctx.registry, ctx.definitions)):
            topic.source = await system.spawn(Silent, name=f"watch-{n}")
        ref = await system.spawn(lambda: FleetActor(ctx), name="fleet")
        await ref.tell(WatchState(BUCKETS.registry, (changed("quote", 1, 1),), True))
        await ref.tell(WatchState(BUCKETS.definitions, (), True))
        yield ref, ctx


@pytest.fixture
async def view() -> AsyncIterator[tuple[ActorRef, WebContext]]:
    async with in_own_task(fleet_view) as running:
        yield running


class TestFleetView:
    """Pages get a snapshot, then each change once, encoded as server-sent events."""

    async def test_a_page_gets_the_snapshot_then_changes(
        self, view: tuple[ActorRef, WebContext]
    ) -> None:
        ref, _ = view
        follower: Follower = await ref.ask(Follow())
        [(name, snapshot)] = events(follower.snapshot)
        assert name == "snapshot"
        assert [r["instanceId"] for r in snapshot["instances"]] == ["quote-00000001"]
        assert snapshot["status"] == {"connected": True, "synced": True}
        await ref.tell(changed("quote", 2, 2))
        await ref.tell(KeyRemoved(BUCKETS.registry, instance_key("quote", "quote-00000001"), 3,
                                  Removal.EXPIRED))  # fmt: skip
        with anyio.fail_after(2):
            first = events(await follower.frames.receive())
            second = events(await follower.frames.receive())
        assert first == [("instance", first[0][1])]
        assert first[0][1]["instanceId"] == "quote-00000002"
        assert first[0][1]["revision"] == 2
        assert second == [("gone", {"instanceId": "quote-00000001", "reason": "EXPIRED"})]
        follower.frames.close()

    async def test_a_full_read_drops_what_it_no_longer_has(
        self, view: tuple[ActorRef, WebContext]
    ) -> None:
        # A restarted watch replays what it finds and names every live key; what the
        # view holds beyond those was removed while the watch was down.
        ref, _ = view
        follower: Follower = await ref.ask(Follow())
        kept = changed("quote", 2, 7)
        await ref.tell(kept)
        await ref.tell(WatchSynced(BUCKETS.registry, True, frozenset({kept.key})))
        with anyio.fail_after(2):
            assert events(await follower.frames.receive())[0][0] == "instance"
            gone = events(await follower.frames.receive())
        follower.frames.close()
        assert gone == [("gone", {"instanceId": "quote-00000001", "reason": "VANISHED"})]

    async def test_an_unreadable_record_is_skipped(self, view: tuple[ActorRef, WebContext]) -> None:
        ref, _ = view
        key = instance_key("quote", "quote-00000009")
        await ref.tell(KeyChanged(BUCKETS.registry, key, b"<not json>", 5, 0.0))
        follower: Follower = await ref.ask(Follow())
        follower.frames.close()
        [(_, snapshot)] = events(follower.snapshot)
        assert [r["instanceId"] for r in snapshot["instances"]] == ["quote-00000001"]

    async def test_a_page_that_falls_behind_is_dropped_not_buffered(
        self, view: tuple[ActorRef, WebContext], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fleet_module, "FOLLOWER_BUFFER", 3)
        ref, _ = view
        slow: Follower = await ref.ask(Follow())
        for n in range(10):
            await ref.tell(changed("quote", 100 + n, 10 + n))
        fresh: Follower = await ref.ask(Follow())  # answered after the ten changes
        fresh.frames.close()
        received = []
        with anyio.fail_after(2):
            async with slow.frames:
                async for frame in slow.frames:  # three events, then the end of the stream
                    received.append(frame)
        assert len(received) == 3
        [(_, snapshot)] = events(fresh.snapshot)  # a reconnecting page misses nothing
        assert len(snapshot["instances"]) == 11
