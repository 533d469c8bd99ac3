"""Durable events over a real nats-server: publishing, delivery, retries, dead letters, faults."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    DiscoverySettings,
    EventNotStoredError,
    EventsSettings,
    HeartbeatSettings,
    InstanceSettings,
    LeadershipSettings,
    NatsCluster,
    NatsServer,
    Subjects,
    WhichChildren,
    start_instance,
)
from aegis_actors._buckets import Buckets
from aegis_actors._events.streams import ensure_dead_letter_stream
from aegis_actors.cli import build_parser
from tests.event_services import Audit, IdempotentLedger, Ledger, Slow
from tests.probes import Journal, watch_logs

pytestmark = pytest.mark.nats

ADDED = "events.ledger.added"
VICTIM = Path(__file__).with_name("event_process.py")


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def settings(nats_url: str, namespace: str, journal: Journal) -> InstanceSettings:
    return InstanceSettings(
        nats=ConnectionSettings(url=nats_url),
        namespace=namespace,
        registration=False,
        settings={"journal": journal},
    )


@pytest.fixture
async def client(nats_url: str, namespace: str) -> AsyncIterator[Client]:
    async with Client(
        url=nats_url, namespace=namespace, discovery=DiscoverySettings(mode="off")
    ) as client:
        yield client


def handled(journal: Journal) -> list[int]:
    """The entries the handler finished, in order."""
    return [e[2] for e in journal.of("entry")]


async def stats(nats: NatsClient, service: str) -> dict[str, Any]:
    """The `data` of the service's one event endpoint in `$SRV.STATS`."""
    reply = await nats.request(f"$SRV.STATS.{service}", b"", timeout=5)
    (endpoint,) = [e for e in json.loads(reply.data)["endpoints"] if e["data"]]
    data: dict[str, Any] = endpoint["data"]
    return data


async def cli(nats_url: str, namespace: str, *argv: str) -> tuple[int, Any]:
    """Run `aegis events VERB... [-- ARG...]` with --json; the exit code and the printed JSON."""
    import contextlib
    import io

    split = argv.index("--") if "--" in argv else len(argv)
    verbs, rest = argv[:split], argv[split + 1 :]
    args = build_parser().parse_args(
        ["events", *verbs, "--url", nats_url, "--namespace", namespace, "--json", *rest]
    )
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            code: int = args.handler(args)
        return code

    code = await anyio.to_thread.run_sync(run)
    # stdout is the process's: the service's log lines (running meanwhile) are there too.
    printed = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    return code, json.loads(printed[-1]) if printed else None


class TestPublishing:
    """A durable publish is stored, acknowledged, and stored once per event id."""

    async def test_a_second_publish_with_the_same_event_id_is_stored_once(
        self, client: Client, nats_client: NatsClient, namespace: str
    ) -> None:
        first = await client.publish_event(ADDED, {"n": 1}, durable=True, event_id="entry-1")
        again = await client.publish_event(ADDED, {"n": 1}, durable=True, event_id="entry-1")
        assert (first.stream, first.sequence, first.duplicate) == (
            f"{namespace}-events-ledger", 1, False
        )  # fmt: skip
        assert (again.event_id, again.sequence, again.duplicate) == ("entry-1", 1, True)
        info = await nats_client.jetstream().stream_info(f"{namespace}-events-ledger")
        assert info.state.messages == 1

    async def test_by_default_an_event_is_durable_when_its_domain_has_a_stream(
        self, client: Client, nats_client: NatsClient, namespace: str
    ) -> None:
        core = await client.publish_event("events.misc.happened", {"n": 1})
        assert (core.stream, core.sequence) == (None, None)
        assert len(core.event_id) == 26  # a ULID
        with pytest.raises(nats.js.errors.NotFoundError):
            await nats_client.jetstream().stream_info(f"{namespace}-events-misc")
        await client.publish_event(ADDED, {"n": 1}, durable=True)
        auto = await client.publish_event(ADDED, {"n": 2})
        assert (auto.stream, auto.sequence) == (f"{namespace}-events-ledger", 2)

    async def test_a_stream_already_holding_the_domain_is_used_and_its_refusal_raised(
        self, client: Client, nats_client: NatsClient, namespace: str
    ) -> None:
        js = nats_client.jetstream()
        await js.add_stream(
            name=f"{namespace}-mine", subjects=[f"{namespace}.events.>"], max_msg_size=64
        )
        stored = await client.publish_event(ADDED, {"n": 1}, durable=True)
        assert stored.stream == f"{namespace}-mine"
        with pytest.raises(EventNotStoredError) as caught:
            await client.publish_event(ADDED, {"n": 1, "note": "x" * 100}, durable=True)
        assert caught.value.subject == ADDED
        assert "was not stored" in str(caught.value)

    async def test_bad_event_ids_and_subjects_are_refused(self, client: Client) -> None:
        with pytest.raises(ValueError, match="event_id"):
            await client.publish_event(ADDED, {}, event_id="has space")
        with pytest.raises(ValueError, match=r"events\.\{domain\}"):
            await client.publish_event("orders.created", {}, durable=True)


class TestDelivery:
    """Each event reaches one instance of the service, in order, once acknowledged."""

    async def test_events_published_while_no_instance_runs_are_handled_in_order_once_it_starts(
        self, client: Client, settings: InstanceSettings, journal: Journal
    ) -> None:
        for n in range(5):
            await client.publish_event(ADDED, {"n": n}, durable=True)
        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            await journal.wait_for(lambda _: len(handled(journal)) == 5)
        assert handled(journal) == [0, 1, 2, 3, 4]
        assert [e[3] for e in journal.of("entry")] == [1] * 5  # first deliveries
        assert [e[4] for e in journal.of("entry")] == [1, 2, 3, 4, 5]  # stream sequences

    async def test_two_instances_share_the_consumer_and_each_event_is_handled_once(
        self, client: Client, settings: InstanceSettings, journal: Journal
    ) -> None:
        async with ActorSystem() as system:
            for _ in range(2):
                await start_instance(system, Ledger, settings)
            for n in range(40):
                await client.publish_event(ADDED, {"n": n}, durable=True)
            await journal.wait_for(lambda _: len(handled(journal)) >= 40)
            again = await client.publish_event(ADDED, {"n": 40}, durable=True)
            await journal.wait_for(lambda _: 40 in handled(journal))
        assert sorted(handled(journal)) == list(range(41))
        assert again.sequence == 41

    async def test_retry_later_has_the_event_delivered_again(
        self, client: Client, settings: InstanceSettings, journal: Journal
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            await client.publish_event(ADDED, {"n": 1, "later": True}, durable=True)
            await journal.wait_for(lambda _: handled(journal) == [1])
        assert journal.of("later") == [("later", 1)]
        assert journal.of("entry")[0][3] == 2  # the second delivery

    async def test_max_concurrency_runs_events_side_by_side(
        self, client: Client, settings: InstanceSettings, journal: Journal
    ) -> None:
        gates = {n: anyio.Event() for n in range(3)}
        slow = settings.model_copy(update={"settings": {"journal": journal, "gates": gates}})
        async with ActorSystem() as system:
            await start_instance(system, Slow, slow)
            for n in range(3):
                await client.publish_event(ADDED, {"n": n}, durable=True)
            await journal.wait_for(lambda _: len(journal.of("started")) == 3)
            assert journal.of("done") == []  # all three run at once
            for gate in gates.values():
                gate.set()
            await journal.wait_for(lambda _: len(journal.of("done")) == 3)

    async def test_a_deleted_consumer_is_made_again_and_delivery_goes_on(
        self,
        client: Client,
        settings: InstanceSettings,
        journal: Journal,
        nats_client: NatsClient,
        namespace: str,
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, IdempotentLedger, settings)
            await client.publish_event(ADDED, {"n": 1}, durable=True)
            await journal.wait_for(lambda _: handled(journal) == [1])
            js = nats_client.jetstream()
            assert await js.delete_consumer(f"{namespace}-events-ledger", "ledger_on_entry")
            await client.publish_event(ADDED, {"n": 2}, durable=True)
            await journal.wait_for(lambda _: 2 in handled(journal))
        # Made again from its last known ack floor: the first event came again, and
        # the handler's dedupe skipped it.
        assert handled(journal) == [1, 2]


class TestBroadcast:
    """A broadcast durable handler: every instance reads the whole stream from its start."""

    async def test_every_instance_handles_every_event_and_its_consumer_goes_with_it(
        self,
        client: Client,
        settings: InstanceSettings,
        journal: Journal,
        nats_client: NatsClient,
        namespace: str,
    ) -> None:
        for n in range(3):
            await client.publish_event(ADDED, {"n": n}, durable=True)
        async with ActorSystem() as system:
            first = await start_instance(system, Audit, settings)
            second = await start_instance(system, Audit, settings)
            await journal.wait_for(lambda _: len(journal.of("audit")) == 6)
            await system.stop(first.ref)
            names = [
                info.name
                for info in await nats_client.jetstream().consumers_info(
                    f"{namespace}-events-ledger"
                )
            ]
            assert names == [f"{second.instance_id}_on_entry"]
        seen = {(iid, n) for _, iid, n in journal.of("audit")}
        assert seen == {(i, n) for i in (first.instance_id, second.instance_id) for n in range(3)}


class TestDeadLetters:
    """An event that keeps failing lands in the dead letters, and replays from there."""

    async def test_a_poison_event_is_dead_lettered_after_max_deliver_and_replayed_by_the_cli(
        self,
        client: Client,
        settings: InstanceSettings,
        journal: Journal,
        nats_client: NatsClient,
        nats_url: str,
        namespace: str,
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            with watch_logs() as logs:
                poison = await client.publish_event(ADDED, {"n": 7, "fail": True}, durable=True)
                await client.publish_event(ADDED, {"n": 8}, durable=True)
                await logs.wait_event("event dead-lettered")
            assert 8 in handled(journal)  # the next event was not held up meanwhile
            assert [e[2] for e in journal.of("failed")] == [1, 2, 3]

            code, listed = await cli(nats_url, namespace, "dead", "list")
            assert code == 0
            (letter,) = listed["data"]["items"]
            assert letter | {"time": None} == {
                "sequence": 1,
                "time": None,
                "service": "ledger",
                "handler": "on_entry",
                "instanceId": letter["instanceId"],
                "subject": ADDED,
                "stream": f"{namespace}-events-ledger",
                "streamSequence": poison.sequence,
                "deliveries": 3,
                "error": "RuntimeError: entry 7 is poison",
                "eventId": poison.event_id,
                "payload": {"n": 7, "fail": True},
            }
            counts = await stats(nats_client, "ledger")
            assert (counts["dead_lettered"], counts["redelivered"], counts["retried"]) == (1, 2, 2)

            # Still poison: the replay fails and the letter stays.
            code, outcome = await cli(nats_url, namespace, "dead", "replay", "--", "1")
            assert code == 0
            assert outcome["data"]["items"][0]["replayed"] is False
            assert "entry 7 is poison" in outcome["data"]["items"][0]["error"]

            journal.fail = False  # type: ignore[attr-defined]
            code, outcome = await cli(nats_url, namespace, "dead", "replay", "--", "1")
            assert outcome["data"]["items"] == [{"sequence": 1, "replayed": True, "error": None}]
            entry = journal.of("entry")[-1]
            assert (entry[2], entry[3], entry[4], entry[5]) == (7, 4, poison.sequence, True)
            code, listed = await cli(nats_url, namespace, "dead", "list")
            assert listed["data"]["items"] == []

    async def test_an_invalid_payload_is_dead_lettered_at_once(
        self, client: Client, settings: InstanceSettings, journal: Journal, nats_client: NatsClient
    ) -> None:
        from aegis_actors._events.dead import DeadLetters

        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            with watch_logs() as logs:
                await client.publish_event(ADDED, {"n": "not a number"}, durable=True)
                await logs.wait_event("event dead-lettered")
            found = await DeadLetters(nats_client, namespace=settings.namespace).list()
        assert found[0].deliveries == 1
        assert found[0].error.startswith("invalid payload: ")

    async def test_dead_letters_are_dropped_by_the_cli(
        self, client: Client, settings: InstanceSettings, journal: Journal, nats_url: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            with watch_logs() as logs:
                for n in (1, 2):
                    await client.publish_event(ADDED, {"n": n, "fail": True}, durable=True)
                await logs.wait_event("event dead-lettered", count=2)
        namespace = settings.namespace
        code, dropped = await cli(nats_url, namespace, "dead", "drop", "--", "--all")
        assert (code, dropped["data"]["dropped"]) == (0, [1, 2])
        assert (await cli(nats_url, namespace, "dead", "list"))[1]["data"]["items"] == []


class TestReplay:
    """A service's consumer can be moved back in its stream: its handler sees events again."""

    async def test_reset_to_the_start_hands_every_event_to_the_handler_again(
        self, client: Client, settings: InstanceSettings, journal: Journal, nats_url: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            for n in range(3):
                await client.publish_event(ADDED, {"n": n}, durable=True)
            await journal.wait_for(lambda _: len(handled(journal)) == 3)
            code, reset = await cli(nats_url, settings.namespace, "reset", "ledger", "--start")
            assert code == 0, reset
            assert reset["data"]["items"][0]["consumer"] == "ledger_on_entry"
            await journal.wait_for(lambda _: len(handled(journal)) == 6)
        assert handled(journal) == [0, 1, 2, 0, 1, 2]

    async def test_reset_to_a_time_or_a_sequence(
        self,
        client: Client,
        settings: InstanceSettings,
        journal: Journal,
        nats_url: str,
        nats_client: NatsClient,
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Ledger, settings)
            for n in range(4):
                await client.publish_event(ADDED, {"n": n}, durable=True)
            await journal.wait_for(lambda _: len(handled(journal)) == 4)
            third = await nats_client.jetstream().get_msg(
                f"{settings.namespace}-events-ledger", seq=3
            )
            assert third.time is not None
            moment = third.time.isoformat()
            code, reset = await cli(
                nats_url, settings.namespace, "reset", "ledger", "--", "--time", moment
            )
            assert (code, reset["data"]["items"][0]["sequence"]) == (0, 3), reset
            await journal.wait_for(lambda _: len(handled(journal)) == 6)
            code, _ = await cli(
                nats_url, settings.namespace, "reset", "ledger", "--", "--sequence", "4"
            )
            await journal.wait_for(lambda _: len(handled(journal)) == 7)
        assert handled(journal) == [0, 1, 2, 3, 2, 3, 3]


class TestFaults:
    """What is acknowledged is kept through crashes of instances and of the server."""

    async def test_sigkill_mid_handler_redelivers_the_event_to_another_instance_once(
        self, client: Client, settings: InstanceSettings, journal: Journal, nats_client: NatsClient
    ) -> None:
        namespace = settings.namespace
        hanging = await nats_client.subscribe(f"{namespace}.test.hanging", max_msgs=1)
        command = [sys.executable, str(VICTIM), str(settings.nats.url), namespace]
        async with await anyio.open_process(command, stderr=None) as victim:
            try:
                event = await client.publish_event(ADDED, {"n": 1}, durable=True)
                with anyio.fail_after(15):
                    announced = await hanging.next_msg(timeout=15)
                assert announced.data.decode() == event.event_id
                async with ActorSystem() as system:
                    survivor = await start_instance(system, IdempotentLedger, settings)
                    victim.send_signal(signal.SIGKILL)
                    await victim.wait()
                    await journal.wait_for(lambda _: handled(journal) == [1])
                    # A later event is handled after it: nothing else was owed.
                    await client.publish_event(ADDED, {"n": 2}, durable=True)
                    await journal.wait_for(lambda _: handled(journal) == [1, 2])
            finally:
                if victim.returncode is None:
                    victim.kill()
        (entry, _) = journal.of("entry")
        assert (entry[1], entry[3]) == (survivor.instance_id, 2)  # its second delivery

    async def test_a_server_restart_loses_no_acknowledged_event(
        self, own_nats_server: NatsServer, namespace: str, journal: Journal
    ) -> None:
        url = own_nats_server.url
        settings = InstanceSettings(
            nats=ConnectionSettings(url=url, reconnect_wait_max=0.2),
            namespace=namespace,
            registration=False,
            settings={"journal": journal},
        )
        async with Client(
            url=url, namespace=namespace, discovery=DiscoverySettings(mode="off")
        ) as client:
            for n in range(20):
                await client.publish_event(ADDED, {"n": n}, durable=True)
            await anyio.to_thread.run_sync(own_nats_server.restart)
            async with ActorSystem() as system:
                await start_instance(system, Ledger, settings)
                await journal.wait_for(lambda _: len(handled(journal)) == 20)
                await anyio.to_thread.run_sync(own_nats_server.restart)
                with anyio.fail_after(10):
                    while True:
                        try:
                            await client.publish_event(ADDED, {"n": 20}, durable=True)
                            break
                        except Exception:
                            await anyio.sleep(0.1)  # JetStream coming back up
                await journal.wait_for(lambda _: 20 in handled(journal), timeout=20)
        assert sorted(set(handled(journal))) == list(range(21))


class TestSettings:
    """`[events]` limits reach the streams aegis makes."""

    async def test_explicit_limits_are_applied_to_the_domain_stream(
        self, nats_url: str, namespace: str, nats_client: NatsClient
    ) -> None:
        events = EventsSettings(max_age=3600, domains={"ledger": {"max_msgs": 1000}})
        async with Client(
            url=nats_url,
            namespace=namespace,
            discovery=DiscoverySettings(mode="off"),
            events=events,
        ) as client:
            await client.publish_event(ADDED, {"n": 1}, durable=True)
        info = await nats_client.jetstream().stream_info(f"{namespace}-events-ledger")
        assert (info.config.max_age, info.config.max_msgs) == (3600, 1000)
        assert info.config.num_replicas == 1  # one server: one copy


class TestSupervision:
    """The events actor follows its service: a restart, a step down, a failover."""

    async def test_a_restarted_service_replays_its_broadcast_handler_from_the_start(
        self, client: Client, settings: InstanceSettings, journal: Journal
    ) -> None:
        for n in range(3):
            await client.publish_event(ADDED, {"n": n}, durable=True)
        async with ActorSystem() as system:
            running = await start_instance(system, Audit, settings)
            await journal.wait_for(lambda _: len(journal.of("audit")) == 3)
            children = await running.ref.ask(WhichChildren())
            (service,) = [c.ref for c in children if c.id == "service"]
            with watch_logs() as logs:
                await service.tell("crash")  # Audit.on_message raises: the service restarts
                await logs.wait_event("restarting child")
            # Its state is gone with it: the handler sees the whole stream again.
            await journal.wait_for(lambda _: len(journal.of("audit")) == 6)
            await client.publish_event(ADDED, {"n": 3}, durable=True)
            await journal.wait_for(lambda _: len(journal.of("audit")) == 7)
        assert [e[2] for e in journal.of("audit")] == [0, 1, 2, 0, 1, 2, 3]

    async def test_only_the_active_instance_of_a_sticky_active_group_takes_shared_events(
        self, client: Client, settings: InstanceSettings, journal: Journal
    ) -> None:
        group = settings.model_copy(
            update={
                "sticky_active_group": "books",
                "registration": True,
                "heartbeat": HeartbeatSettings(ttl=2, interval=0.5),
                "leadership": LeadershipSettings(ttl=2, interval=0.5, margin=0.5),
            }
        )
        async with ActorSystem() as system:
            first = await start_instance(system, Ledger, group)
            second = await start_instance(system, Ledger, group)
            for n in range(20):
                await client.publish_event(ADDED, {"n": n}, durable=True)
            await journal.wait_for(lambda _: len(handled(journal)) == 20)
            (active,) = {e[1] for e in journal.of("entry")}
            assert active in (first.instance_id, second.instance_id)
            # The ACTIVE one stops: the standby takes over, and the events with it.
            await system.stop(first.ref if active == first.instance_id else second.ref)
            await client.publish_event(ADDED, {"n": 20}, durable=True)
            await journal.wait_for(lambda _: 20 in handled(journal), timeout=10)
        assert journal.of("entry")[-1][1] != active
        assert sorted(handled(journal)) == list(range(21))


class TestCluster:
    """On a JetStream cluster of three, event streams have three copies, as the buckets do."""

    async def test_the_domain_and_dead_letter_streams_have_three_copies(
        self, nats_cluster: NatsCluster, namespace: str
    ) -> None:
        url = nats_cluster.urls[0]
        async with Client(
            url=url, namespace=namespace, discovery=DiscoverySettings(mode="off")
        ) as client:
            stored = await client.publish_event(ADDED, {"n": 1}, durable=True)
            js = client.nats.jetstream(timeout=10)
            await ensure_dead_letter_stream(
                js,
                subjects=Subjects(namespace),
                buckets=Buckets(namespace),
                settings=EventsSettings(),
            )
            events = await js.stream_info(f"{namespace}-events-ledger")
            dead = await js.stream_info(f"{namespace}-aegis-dead-letters")
        assert stored.sequence == 1
        assert (events.config.num_replicas, dead.config.num_replicas) == (3, 3)
