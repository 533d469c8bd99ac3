"""Sticky single-active services: one ACTIVE instance per group, fenced."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import anyio
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    HeartbeatSettings,
    InstanceSettings,
    InstanceStatus,
    KVBucket,
    LeadershipSettings,
    NatsServer,
    NoRespondersError,
    RunningInstance,
    ServiceActor,
    ServiceInstance,
    ServiceView,
    Subjects,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets, leadership_key
from aegis_actors._connection import barrier
from aegis_actors._discovery.cache import _replaced_leaders
from aegis_actors._discovery.snapshot import DiscoveryCache
from aegis_actors._leadership.models import LeadershipRecord
from aegis_actors._models import utc_now
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._requester import Requester
from aegis_actors._wire import NOT_SERVED_HEADER
from tests.discovery_support import Victims
from tests.probes import Journal, LogJournal, watch_logs

pytestmark = pytest.mark.nats

SERVICE = "singleton"
GROUP = "main"
KEY = leadership_key(SERVICE, GROUP)


class Singleton(ServiceActor):
    """Says who answers; tells the test's journal every leadership change it sees."""

    service_name = SERVICE
    sticky_active_group = GROUP

    @rpc
    async def whoami(self) -> str:
        return self.instance_id

    @rpc
    async def hold(self) -> str:
        """Answer once the test sets the `gate` event."""
        self.settings["journal"].record("holding", self.instance_id)
        await self.settings["gate"].wait()
        return self.instance_id

    async def on_leadership_changed(self, active: bool) -> None:
        leadership = self.leadership
        assert leadership is not None
        journal: Journal = self.settings["journal"]
        journal.record(
            "leadership", self.instance_id, leadership.group, active, leadership.revision
        )


class StickyVictim(Singleton):
    """The service of `tests/instance_process.py`, so it shares a group with the victim."""

    service_name = "victim"


def sticky(
    settings: InstanceSettings,
    journal: Journal,
    *,
    group: str | None = None,
    ttl: int = 2,
    interval: float = 0.5,
    margin: float = 0.5,
) -> InstanceSettings:
    """Instances of `Singleton` with a short leadership TTL (and `group` instead of `main`)."""
    return settings.model_copy(
        update={
            "sticky_active_group": group,
            "leadership": LeadershipSettings(ttl=ttl, interval=interval, margin=margin),
            "settings": {"journal": journal, "gate": anyio.Event()},
        }
    )


def told(journal: Journal, group: str = GROUP) -> dict[str, tuple[bool, int | None]]:
    """What each instance of `group` was last told: (active, revision)."""
    last: dict[str, tuple[bool, int | None]] = {}
    for _, instance_id, in_group, active, revision in journal.of("leadership"):
        if in_group == group:
            last[instance_id] = (active, revision)
    return last


def actives(journal: Journal, group: str = GROUP) -> set[str]:
    return {i for i, (active, _) in told(journal, group).items() if active}


async def wait_active(
    journal: Journal, among: set[str], timeout: float = 10.0, group: str = GROUP
) -> str:
    """Wait until exactly one of `among` was last told ACTIVE; return it.

    (A stopped instance is not told: its service stops before its leadership.)
    """
    await journal.wait_for(lambda _: len(actives(journal, group) & among) == 1, timeout)
    (active,) = actives(journal, group) & among
    return active


def statuses(
    snapshot: Mapping[str, ServiceView], group: str | None = None, service: str = SERVICE
) -> Counter[str]:
    view = snapshot.get(service)
    records = view.instances if view is not None else ()
    return Counter(
        i.status.value for i in records if group is None or i.sticky_active_group == group
    )


def callable_ids(snapshot: Mapping[str, ServiceView], service: str = SERVICE) -> tuple[str, ...]:
    view = snapshot.get(service)
    return view.ids if view is not None else ()


def the_cache(client: Client) -> DiscoveryCache:
    cache = client.cache
    assert cache is not None
    return cache


async def registry(client: NatsClient, namespace: str) -> KVBucket:
    return await KVBucket.ensure(client.jetstream(), registry_bucket_spec(Buckets(namespace)))


async def holder(bucket: KVBucket, key: str = KEY) -> tuple[str, int]:
    entry = await bucket.get(key)
    assert entry is not None
    return LeadershipRecord.model_validate_json(entry.value).instance_id, entry.revision


def took_over(logs: LogJournal, instance_id: str) -> str:
    """Why `instance_id` last took the leadership key (the reason it logged)."""
    takes = logs.entries("leadership taken: instance is ACTIVE")
    reason: str = [e for e in takes if e["instance_id"] == instance_id][-1]["reason"]
    return reason


def impostor() -> bytes:
    """A leadership record naming an instance that does not run."""
    record = LeadershipRecord(
        service_name=SERVICE,
        sticky_active_group=GROUP,
        instance_id=f"{SERVICE}-0badc0de",
        active_since=utc_now(),
    )
    return record.model_dump_json().encode()


async def send(client: NatsClient, subject: str) -> Subscription:
    """Publish a request; the server has it on return. The reply comes on the subscription."""
    inbox = client.new_inbox()
    replies = await client.subscribe(inbox, max_msgs=1)
    await client.publish(subject, b"null", reply=inbox)
    await barrier(client)
    return replies


@asynccontextmanager
async def fleet(
    settings: InstanceSettings, count: int, service: type[ServiceActor] = Singleton
) -> AsyncIterator[tuple[ActorSystem, dict[str, RunningInstance]]]:
    async with ActorSystem() as system:
        runs = {}
        for _ in range(count):
            running = await start_instance(system, service, settings)
            runs[running.instance_id] = running
        yield system, runs


async def wait_renewals(bucket: KVBucket, after: int, count: int, key: str = KEY) -> None:
    """Wait until `key` was written `count` times after revision `after` (watching, no polling).

    (Revisions count every write of the bucket, so they are no measure of renewals.)
    """
    kv = await bucket.js.key_value(bucket.name)
    watcher = await kv.watch(key)
    seen: set[int] = set()
    try:
        with anyio.fail_after(10):
            while len(seen) < count:
                entry = await watcher.updates(timeout=10)
                if entry is not None and entry.revision is not None and entry.revision > after:
                    seen.add(entry.revision)
    finally:
        await watcher.stop()


class TestOneActive:
    """In a group exactly one instance is ACTIVE; calls reach it alone."""

    async def test_exactly_one_of_three_instances_is_active_and_stays_so_across_renewals(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        bucket = await registry(nats_client, namespace)
        async with (
            fleet(sticky(instance_settings, journal), 3) as (_, runs),
            Client(url=instance_settings.nats.url, namespace=namespace) as client,
        ):
            ids = set(runs)
            active = await wait_active(journal, ids)
            await the_cache(client).wait_for(
                lambda s: statuses(s) == {"ACTIVE": 1, "STANDBY": 2} and bool(callable_ids(s)),
                timeout=10,
            )
            assert callable_ids(the_cache(client).snapshot) == (active,)
            (_, _, _, _, taken) = journal.of("leadership")[0]
            first_holder, first_revision = await holder(bucket)
            assert first_holder == active
            # Three renewals later (interval 0.5 s) it is still the one, and
            # nobody was ever told otherwise.
            await wait_renewals(bucket, after=first_revision, count=3)
            assert (await holder(bucket))[0] == active
            assert journal.of("leadership") == [("leadership", active, GROUP, True, taken)]
            view = the_cache(client).snapshot[SERVICE]
            records = {i.instance_id: i for i in view.instances}
            assert records[active].status is InstanceStatus.ACTIVE
            assert records[active].leadership_revision == taken  # the fencing token
            assert all(records[i].status is InstanceStatus.STANDBY for i in ids - {active})
            assert all(records[i].leadership_revision is None for i in ids - {active})

    async def test_calls_reach_only_the_active_instance_with_or_without_discovery(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        async with (
            fleet(sticky(instance_settings, journal), 3) as (system, runs),
            Client(url=instance_settings.nats.url, namespace=namespace) as client,
        ):
            active = await wait_active(journal, set(runs))
            await the_cache(client).wait_for(lambda s: callable_ids(s) == (active,), timeout=10)
            by_discovery = [await client.call(SERVICE, "whoami") for _ in range(10)]
            by_queue_group = [
                await client.call(SERVICE, "whoami", discovery=False) for _ in range(10)
            ]
            assert by_discovery == by_queue_group == [active] * 10
            # A standby does not even listen on its own subject.
            requester = Requester(nats_client)
            await requester.start()
            try:
                for standby in set(runs) - {active}:
                    with pytest.raises(NoRespondersError):
                        await requester.request(
                            Subjects(namespace).instance(standby, "whoami"), b"null", timeout=2
                        )
            finally:
                await requester.close()

            # After a handover the calls follow the new ACTIVE instance.
            await system.stop(runs[active].ref)
            successor = await wait_active(journal, set(runs) - {active})
            await the_cache(client).wait_for(lambda s: callable_ids(s) == (successor,), timeout=10)
            assert [await client.call(SERVICE, "whoami") for _ in range(5)] == [successor] * 5
            assert await client.call(SERVICE, "whoami", discovery=False) == successor

    async def test_without_registration_the_queue_group_has_the_active_instance_alone(
        self, instance_settings: InstanceSettings, namespace: str
    ) -> None:
        journal = Journal()
        settings = sticky(instance_settings, journal).model_copy(update={"registration": False})
        async with (
            fleet(settings, 2) as (system, runs),
            Client(url=instance_settings.nats.url, namespace=namespace) as client,
        ):
            active = await wait_active(journal, set(runs))
            calls = [await client.call(SERVICE, "whoami", discovery=False) for _ in range(6)]
            assert calls == [active] * 6
            await system.stop(runs[active].ref)
            successor = await wait_active(journal, set(runs) - {active})
            assert await client.call(SERVICE, "whoami", discovery=False) == successor


class TestHandover:
    """When the active instance stops or dies, a standby takes over."""

    async def test_a_graceful_stop_hands_over_at_once_without_waiting_for_the_ttl(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        ttl = 30  # the handover below must not be the key expiring
        settings = sticky(instance_settings, journal, ttl=ttl, interval=3.0, margin=1.0)
        # Nor the registry record waiting for a periodic beat.
        beat = HeartbeatSettings(ttl=30, interval=10.0)
        settings = settings.model_copy(update={"heartbeat": beat})
        bucket = await registry(nats_client, namespace)
        with watch_logs() as logs:
            async with (
                fleet(settings, 3) as (system, runs),
                Client(url=instance_settings.nats.url, namespace=namespace) as client,
            ):
                first = await wait_active(journal, set(runs))
                await the_cache(client).wait_for(
                    lambda s: callable_ids(s) == (first,), timeout=beat.interval / 3
                )
                _, first_revision = await holder(bucket)
                await system.stop(runs[first].ref)
                # A third of the TTL (and of the beat): only the release, and the
                # record written on the change, can explain it.
                second = await wait_active(journal, set(runs) - {first}, timeout=ttl / 3)
                await the_cache(client).wait_for(
                    lambda s: callable_ids(s) == (second,), timeout=beat.interval / 3
                )
                successor, current = await holder(bucket)
        assert successor == second
        active, taken = told(journal)[second]
        assert active
        assert taken is not None
        assert first_revision < taken <= current  # (renewals raise `current` past the take)
        assert took_over(logs, second) == "key deleted"

    async def test_a_standby_takes_over_within_the_ttl_plus_one_heartbeat_after_a_sigkill(
        self, instance_settings: InstanceSettings, namespace: str
    ) -> None:
        url = str(instance_settings.nats.url)
        ttl, interval = 2, 0.5  # the victim's leadership key (and its heartbeat)
        victims = Victims(url, namespace, ttl=ttl, interval=interval, group=GROUP)
        journal = Journal()
        settings = sticky(instance_settings, journal, ttl=ttl, interval=interval, margin=interval)
        try:
            with watch_logs() as logs:
                async with Client(url=url, namespace=namespace) as client:
                    victim = await victims.start()  # alone, so it takes the key
                    await the_cache(client).wait_for(
                        lambda s: callable_ids(s, "victim") == (victim,), timeout=10
                    )
                    async with fleet(settings, 2, StickyVictim) as (_, runs):
                        await the_cache(client).wait_for(
                            lambda s: statuses(s, service="victim") == {"ACTIVE": 1, "STANDBY": 2},
                            timeout=10,
                        )
                        assert actives(journal) == set()
                        await victims.kill(victim)
                        # Within the TTL plus one heartbeat. Added: the server's
                        # expiry tick (up to 0.27 s, measured) and 1 s
                        # for a busy 2-core machine.
                        bound = ttl + instance_settings.heartbeat.interval + 0.27 + 1.0
                        with anyio.fail_after(bound):
                            successor = await wait_active(journal, set(runs), timeout=bound)
                            # Watchers see it: the registry says so, and callers
                            # call the new leader only, even while the dead one's
                            # record is still there.
                            await the_cache(client).wait_for(
                                lambda s: callable_ids(s, "victim") == (successor,), timeout=bound
                            )
                        assert await client.call("victim", "whoami") == successor
            # Told by its watch that the key expired: no polling.
            assert took_over(logs, successor) == "key expired"
        finally:
            await victims.close()


class TestGroups:
    """Groups of one service elect their leaders independently."""

    async def test_two_groups_of_one_service_each_have_their_own_active_instance(
        self, instance_settings: InstanceSettings, namespace: str
    ) -> None:
        journal = Journal()
        async with (
            fleet(sticky(instance_settings, journal, group="eu"), 2) as (system, eu),
            fleet(sticky(instance_settings, journal, group="us"), 2) as (_, us),
            Client(url=instance_settings.nats.url, namespace=namespace) as client,
        ):
            await journal.wait_for(
                lambda _: len(actives(journal, "eu")) == 1 and len(actives(journal, "us")) == 1
            )
            (eu_active,) = actives(journal, "eu")
            (us_active,) = actives(journal, "us")
            assert eu_active in eu
            assert us_active in us
            await the_cache(client).wait_for(
                lambda s: sorted(callable_ids(s)) == sorted([eu_active, us_active]), timeout=10
            )
            us_before = told(journal, "us")

            await system.stop(eu[eu_active].ref)
            eu_successor = await wait_active(journal, set(eu) - {eu_active}, group="eu")
            assert told(journal, "us") == us_before  # untouched
            await the_cache(client).wait_for(
                lambda s: sorted(callable_ids(s)) == sorted([eu_successor, us_active]),
                timeout=10,
            )


class TestFencing:
    """A leader that loses its key steps down; no two are ever ACTIVE at one revision."""

    async def test_a_leader_whose_key_is_purged_steps_down_and_the_next_leader_has_a_larger_revision(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        bucket = await registry(nats_client, namespace)
        async with fleet(sticky(instance_settings, journal), 2) as (_, runs):
            first = await wait_active(journal, set(runs))
            _, first_revision = told(journal)[first]
            kv = await nats_client.jetstream().key_value(bucket.name)
            await kv.purge(KEY)
            # The leader steps down; one of the two (maybe the same) takes a
            # new revision.
            await journal.wait_for(
                lambda _: ("leadership", first, GROUP, False, None) in journal.events
            )
            await journal.wait_for(
                lambda _: any(
                    active and revision is not None and revision > (first_revision or 0)
                    for _, _, _, active, revision in journal.of("leadership")
                )
            )
            new_holder, current = await holder(bucket)
            active, taken = told(journal)[new_holder]
            assert active
            assert taken is not None
            assert taken <= current
        # Every take was at its own revision: never two ACTIVE at one revision.
        taken = [rev for _, _, _, active, rev in journal.of("leadership") if active]
        assert len(taken) == len(set(taken))

    async def test_a_leader_whose_key_is_written_by_another_steps_down_until_that_one_expires(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        bucket = await registry(nats_client, namespace)
        async with (
            fleet(sticky(instance_settings, journal), 2) as (_, runs),
            Client(url=instance_settings.nats.url, namespace=namespace) as client,
        ):
            first = await wait_active(journal, set(runs))
            impostor = LeadershipRecord(
                service_name=SERVICE,
                sticky_active_group=GROUP,
                instance_id=f"{SERVICE}-0badc0de",
                active_since=utc_now(),
            )
            impostor_revision = await bucket.put(KEY, impostor.model_dump_json().encode(), ttl=1)
            # The leader steps down, and nobody is ACTIVE while the impostor
            # holds the key: callers find no instance to call.
            await journal.wait_for(lambda _: actives(journal) == set())
            await the_cache(client).wait_for(
                lambda s: statuses(s) == {"STANDBY": 2} and not callable_ids(s), timeout=10
            )
            # Its key expires (TTL 1 s); a real instance takes a newer revision.
            successor = await wait_active(journal, set(runs))
            assert told(journal)[successor][1] > impostor_revision  # type: ignore[operator]
            await the_cache(client).wait_for(lambda s: callable_ids(s) == (successor,), timeout=10)
            assert first in runs

    async def test_a_call_in_flight_at_a_step_down_completes_and_a_queued_one_is_refused(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        settings = sticky(instance_settings, journal)
        bucket = await registry(nats_client, namespace)
        subjects = Subjects(namespace)
        with watch_logs() as logs:
            async with fleet(settings, 1) as (_, runs):
                (leader,) = runs
                await wait_active(journal, {leader})
                hold = await send(nats_client, subjects.instance(leader, "hold"))
                await journal.wait_for(lambda _: ("holding", leader) in journal.events)
                # Delivered while the handler holds the mailbox: it waits there.
                queued = await send(nats_client, subjects.instance(leader, "whoami"))
                # Another instance's record: the leader steps down (and stays down).
                await bucket.put(KEY, impostor(), ttl=30)
                await logs.wait_event("leadership lost: instance is STANDBY")
                settings.settings["gate"].set()
                held = json.loads((await hold.next_msg(timeout=5)).data)
                refusal = await queued.next_msg(timeout=5)
                refused = json.loads(refusal.data)
                assert told(journal)[leader] == (False, None)
        assert held == {"ok": True, "status": 200, "data": leader}
        # The service learnt of the step-down ahead of the queued request.
        assert refused["status"] == 503
        assert refused["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "STANDBY" in refused["error"]["message"]
        # Callers learn that no handler ran, so they try the ACTIVE instance.
        assert (refusal.headers or {}).get(NOT_SERVED_HEADER) == "standby"

    async def test_a_leader_that_cannot_reach_the_store_steps_down_before_its_key_can_expire(
        self, own_nats_server: NatsServer, namespace: str
    ) -> None:
        ttl = 2
        journal = Journal()
        settings = sticky(
            InstanceSettings(
                nats=ConnectionSettings(url=own_nats_server.url),
                namespace=namespace,
                heartbeat=HeartbeatSettings(ttl=4, interval=1.0),
            ),
            journal,
            ttl=ttl,
            interval=0.5,
            margin=0.5,
        )
        renewals = Journal()
        async with (
            fleet(settings, 1) as (_, runs),
            watch_writes(own_nats_server.url, namespace, renewals),
        ):
            (leader,) = runs
            await wait_active(journal, {leader})
            await renewals.wait_for(lambda events: len(events) >= 2)  # renewing
            with own_nats_server.paused():
                paused_at = time.time()
                # Nothing tells it; its lease runs out, and it steps down.
                await journal.wait_for(
                    lambda _: told(journal)[leader] == (False, None), timeout=ttl + 1
                )
                stepped_down = time.time()
            # Back in touch, it takes the key again (nobody else could): a new revision.
            await journal.wait_for(lambda _: told(journal)[leader][0], timeout=10)
            retaken = told(journal)[leader][1]
            assert retaken is not None
            # Once the watch has caught up to that, it has seen every earlier write.
            await renewals.wait_for(lambda events: any(rev >= retaken for _, rev in events))
            last_write = max(stored for stored, _ in renewals.events if stored <= paused_at)
            # The key lives at least `ttl` after its last write was stored: the
            # leader was STANDBY before anyone else could have taken it over.
            assert stepped_down < last_write + ttl


class TestRecovery:
    """Leadership survives the loss of its bucket."""

    async def test_a_leader_whose_registry_bucket_is_deleted_steps_down_and_takes_the_new_one(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        journal = Journal()
        async with fleet(sticky(instance_settings, journal), 1) as (_, runs):
            (leader,) = runs
            await wait_active(journal, {leader})
            await nats_client.jetstream().delete_key_value(Buckets(namespace).registry)
            # Its key went with the bucket: it steps down, then takes the key
            # in the bucket made again (by whichever instance actor gets there first).
            await journal.wait_for(lambda _: told(journal)[leader] == (False, None))
            await journal.wait_for(lambda _: told(journal)[leader][0], timeout=10)
            bucket = await registry(nats_client, namespace)
            holder_id, current = await holder(bucket)
            taken = told(journal)[leader][1]
            assert holder_id == leader
            assert taken is not None
            assert taken <= current


@asynccontextmanager
async def watch_writes(url: str, namespace: str, journal: Journal) -> AsyncIterator[None]:
    """Record every write of the leadership key as (server time it was stored, revision)."""
    client = await nats.connect(url)
    try:
        bucket = await registry(client, namespace)
        kv = await client.jetstream().key_value(bucket.name)
        watcher = await kv.watch(KEY)

        async def run() -> None:
            async for entry in watcher:
                # Values only: not deletes, nor expiry markers (empty, nats.py #966).
                if entry is None or entry.operation is not None or not entry.value:
                    continue
                assert isinstance(entry.created, datetime)
                journal.record(entry.created.timestamp(), entry.revision)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                yield
                tg.cancel_scope.cancel()
        finally:
            await watcher.stop()
    finally:
        await client.close()


class TestSettings:
    """Groups and leadership settings are checked before anything starts."""

    def test_renewals_must_fit_in_the_ttl(self) -> None:
        with pytest.raises(ValidationError, match=r"interval \(1\.5 s\) plus margin \(0\.5 s\)"):
            LeadershipSettings(ttl=2, interval=1.5, margin=0.5)

    def test_a_group_must_be_one_key_token(self) -> None:
        with pytest.raises(ValidationError, match=r"sticky-active group 'a\.b' must match"):
            InstanceSettings(sticky_active_group="a.b")
        with pytest.raises(ValueError, match="sticky-active group 'two words' must match"):

            class Bad(ServiceActor):
                service_name = "bad-group"
                sticky_active_group = "two words"

    def test_a_newer_leader_replaces_an_older_active_record_of_its_group(self) -> None:
        def record(instance_id: str, group: str, revision: int | None) -> ServiceInstance:
            return ServiceInstance(
                service_name=SERVICE,
                instance_id=instance_id,
                version="1.0.0",
                status=InstanceStatus.ACTIVE,
                sticky_active_group=group,
                leadership_revision=revision,
                last_heartbeat=utc_now(),
            )

        instances = (
            record("dead", "eu", 5),
            record("new", "eu", 9),
            record("us-leader", "us", 3),
            record("legacy", "eu", None),
        )
        assert _replaced_leaders(instances) == {"dead", "legacy"}
