"""A subclass's own attributes never clash with the machinery that serves it.

The runtime keeps its machinery in one attribute, `_actor_server`; every
other `_name` belongs to the subclass. These tests give a service every
attribute name the machinery used to put on it, set to values the machinery
would have choked on, and check that requests, events, the graceful drain
and a step-down to STANDBY all still work, and that the values are intact.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from aegis_actors import (
    ActorSystem,
    InstanceSettings,
    KVBucket,
    LeadershipSettings,
    ServiceActor,
    Subjects,
    event,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets, leadership_key
from aegis_actors._connection import barrier
from aegis_actors._leadership.models import LeadershipRecord
from aegis_actors._models import utc_now
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._transport import NatsClient, Subscription
from aegis_actors._wire import NOT_SERVED_HEADER
from tests.probes import Journal, watch_logs

pytestmark = pytest.mark.nats

#: Every attribute the machinery of `ServiceActor` set on the instance before
#: it moved into `_actor_server`, with a value of the subclass's own.
OLD_MACHINERY_NAMES = (
    "_endpoints",
    "_subs",
    "_serving_subs",
    "_standby",
    "_told_active",
    "_running",
    "_idle",
    "_limiters",
    "_stats",
    "_routes",
    "_root",
    "_rooted",
    "_micro",
    "_stack",
    "_tg",
    "_leadership",
    "_seen",
    "_drain",
    "_reply",
    "_run",
    "_serve_request",
    "_serve_event",
    "_subscribe",
)
GROUP = "crowd"


class Crowded(ServiceActor):
    """A service that uses the names the machinery once took for itself."""

    service_name = "crowded"
    sticky_active_group = GROUP

    def __init__(self) -> None:
        super().__init__()
        for name in OLD_MACHINERY_NAMES:
            setattr(self, name, f"mine: {name}")

    async def on_start(self) -> None:
        self._stats = {"calls": 0}  # what broke every request before

    @rpc(max_concurrency=2)
    async def add(self, params: dict[str, int]) -> int:
        self._stats["calls"] += 1
        return params["a"] + params["b"]

    @rpc
    async def hold(self) -> str:
        journal: Journal = self.settings["journal"]
        journal.record("holding")
        await self.settings["gate"].wait()
        return "held"

    @event("events.crowd.*")
    async def on_crowd(self, payload: dict[str, Any]) -> None:
        self.settings["journal"].record("event", payload["n"])

    async def on_stop(self) -> None:
        journal: Journal = self.settings["journal"]
        journal.record("calls", self._stats["calls"])
        kept = all(getattr(self, n) == f"mine: {n}" for n in OLD_MACHINERY_NAMES if n != "_stats")
        journal.record("kept", kept)
        journal.record("framework", sorted(set(vars(self)) - set(OLD_MACHINERY_NAMES)))


def impostor() -> tuple[str, bytes]:
    """The group's leadership key, and a record naming an instance that does not run."""
    record = LeadershipRecord(
        service_name="crowded",
        sticky_active_group=GROUP,
        instance_id="crowded-0badc0de",
        active_since=utc_now(),
    )
    return leadership_key("crowded", GROUP), record.model_dump_json().encode()


async def send(client: NatsClient, subject: str, body: bytes) -> Subscription:
    """Publish a request; the server has it on return. The reply comes on the subscription."""
    inbox = client.new_inbox()
    replies = await client.subscribe(inbox, max_msgs=1)
    await client.publish(subject, body, reply=inbox)
    await barrier(client)
    return replies


class TestOwnAttributes:
    """A subclass with `_stats`, `_tg`, `_subs`... of its own is served like any other."""

    async def test_requests_events_drain_and_standby_work_and_its_values_stay(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        settings = instance_settings.model_copy(
            update={
                "leadership": LeadershipSettings(ttl=2, interval=0.5, margin=0.5),
                "settings": {"journal": journal, "gate": anyio.Event()},
            }
        )
        subjects = Subjects(namespace)
        with watch_logs() as logs:
            async with ActorSystem() as system:
                running = await start_instance(system, Crowded, settings)
                await logs.wait_event("leadership taken: instance is ACTIVE")
                # Requests, on the service's and on the instance's subjects.
                reply = await nats_client.request(
                    subjects.rpc("crowded", "add"), b'{"a": 1, "b": 2}', timeout=5
                )
                assert json.loads(reply.data) == {"ok": True, "status": 200, "data": 3}
                reply = await nats_client.request(
                    subjects.instance(running.instance_id, "add"), b'{"a": 2, "b": 2}', timeout=5
                )
                assert json.loads(reply.data)["data"] == 4
                # Events.
                await nats_client.publish(subjects.event("events.crowd.joined"), b'{"n": 7}')
                await journal.wait_count(("event", 7), 1)
                # Standby: a call held in the handler, one queued behind it,
                # then another instance's record takes the leadership key.
                hold = await send(nats_client, subjects.instance(running.instance_id, "hold"), b"")
                await journal.wait_count(("holding",), 1)
                queued = await send(
                    nats_client, subjects.instance(running.instance_id, "add"), b'{"a": 0, "b": 0}'
                )
                bucket = await KVBucket.ensure(
                    nats_client.jetstream(), registry_bucket_spec(Buckets(namespace))
                )
                key, value = impostor()
                await bucket.put(key, value, ttl=30)
                await logs.wait_event("leadership lost: instance is STANDBY")
                settings.settings["gate"].set()
                held = json.loads((await hold.next_msg(timeout=5)).data)
                refusal = await queued.next_msg(timeout=5)
                await system.stop(running.ref)
        assert held == {"ok": True, "status": 200, "data": "held"}
        assert json.loads(refusal.data)["status"] == 503
        assert (refusal.headers or {}).get(NOT_SERVED_HEADER) == "standby"
        assert journal.of("calls") == [("calls", 2)]
        assert journal.of("kept") == [("kept", True)]

    async def test_an_in_flight_call_is_answered_during_the_stop(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        settings = instance_settings.model_copy(
            update={"settings": {"journal": journal, "gate": anyio.Event()}}
        )
        subject = Subjects(namespace).rpc("crowded", "hold")
        with watch_logs() as logs:
            async with ActorSystem() as system:
                running = await start_instance(system, Crowded, settings)
                await logs.wait_event("leadership taken: instance is ACTIVE")
                hold = await send(nats_client, subject, b"")
                await journal.wait_count(("holding",), 1)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(system.stop, running.ref)
                    await anyio.wait_all_tasks_blocked()
                    settings.settings["gate"].set()
                held = json.loads((await hold.next_msg(timeout=5)).data)
        assert held == {"ok": True, "status": 200, "data": "held"}
        assert journal.of("kept") == [("kept", True)]
        # Beside every actor's `actor_*`, the runtime put two attributes on it.
        assert journal.of("framework") == [
            (
                "framework",
                ["_actor_server", "actor_instance", "actor_log", "actor_ref", "actor_system"],
            )
        ]
