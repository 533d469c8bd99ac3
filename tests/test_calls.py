"""call() end to end over real NATS: discovery, strategies, failover, retries, fallbacks."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from aegis_actors import (
    ActorSystem,
    CallStrategy,
    Client,
    ConfigError,
    ConnectionSettings,
    DiscoveryMode,
    DiscoverySettings,
    HeartbeatSettings,
    KVBucket,
    NatsCluster,
    NatsServer,
    ServiceError,
    Subjects,
    WhichChildren,
    connect,
    rpc,
)
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._discovery.snapshot import DiscoveryCache
from aegis_actors._dispatch import standby_refusal
from aegis_actors._registry.store import registry_bucket_spec
from tests.discovery_support import (
    Echo,
    Front,
    instance_settings,
    register_ghost,
    start_fleet,
    ttl_cache,
    victims,
    wait_registered,
)
from tests.probes import Journal

pytestmark = pytest.mark.nats


class DeclaredEcho(Echo):
    """`echo`, with a method it declares idempotent (callers may retry it after a timeout)."""

    @rpc(max_concurrency=64, idempotent=True)
    async def stall_declared(self) -> str:
        """The first call in the fleet hangs past its deadline; later ones answer."""
        return await self.stall_once()


@asynccontextmanager
async def client(url: str, namespace: str, **discovery: Any) -> AsyncIterator[Client]:
    async with Client(url=url, namespace=namespace, discovery=DiscoverySettings(**discovery)) as c:
        yield c


def cache_of(c: Client) -> DiscoveryCache:
    assert c.cache is not None
    return c.cache


def registered(c: Client, service: str) -> set[str]:
    view = cache_of(c).snapshot.get(service)
    return {i.instance_id for i in view.instances} if view else set()


class TestDiscovery:
    """Instances are found through the registry watch, and dropped when they go."""

    async def test_a_new_instance_is_called_through_the_watch_without_a_registry_read(
        self, nats_url: str, namespace: str
    ) -> None:
        async with client(nats_url, namespace) as c, ActorSystem() as system:
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            assert await c.wait_for_instances("echo") == (echo.instance_id,)
            assert await c.call("echo", "whoami") == echo.instance_id
            stats = c.statistics()
        assert stats.discovery is not None
        assert (stats.discovery.loads, stats.discovery.misses, stats.discovery.hits) == (0, 0, 1)

    async def test_waiting_for_more_instances_than_there_are_says_how_many_it_saw(
        self, nats_url: str, namespace: str
    ) -> None:
        async with client(nats_url, namespace) as c, ActorSystem() as system:
            await start_fleet(system, 1, instance_settings(nats_url, namespace))
            await c.wait_for_instances("echo")
            with pytest.raises(TimeoutError) as info:
                await c.wait_for_instances("echo", 2, timeout=0.2)
            with pytest.raises(TimeoutError) as nobody:
                await c.wait_for_instances("nobody", timeout=0.1)
        assert str(info.value) == (
            "waited 0.2 s for 2 callable instance(s) of 'echo', saw 1 (1 registered: 1 ACTIVE)"
        )
        assert str(nobody.value) == (
            "waited 0.1 s for 1 callable instance(s) of 'nobody', saw 0 (none registered)"
        )

    async def test_a_gracefully_stopped_instance_is_dropped_and_no_call_fails(
        self, nats_url: str, namespace: str
    ) -> None:
        answers: list[str] = []
        failures: list[BaseException] = []
        async with client(nats_url, namespace) as c, ActorSystem() as system:
            leaving, staying = await start_fleet(system, 2, instance_settings(nats_url, namespace))
            await c.wait_for_instances("echo", 2)

            async def load() -> None:
                while True:
                    try:
                        answers.append(await c.call("echo", "whoami"))
                    except ServiceError as exc:
                        failures.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(load)
                await system.stop(leaving.ref)
                await cache_of(c).wait_for(
                    lambda _: leaving.instance_id not in registered(c, "echo"), timeout=5
                )
                after = len(answers)
                await cache_of(c).wait_for(lambda _: len(answers) >= after + 10, timeout=5)
                tg.cancel_scope.cancel()
        assert failures == []
        assert set(answers[after:]) == {staying.instance_id}

    async def test_a_killed_instance_is_skipped_at_the_first_failure_and_expires_everywhere(
        self, nats_url: str, namespace: str
    ) -> None:
        async with (
            victims(nats_url, namespace, 2) as fleet,
            client(nats_url, namespace) as first,
            client(nats_url, namespace) as second,
        ):
            for c in (first, second):
                await c.wait_for_instances("victim", 2)
            dead = next(iter(fleet.processes))
            await fleet.kill(dead)
            for n in range(4):
                assert await first.call("victim", "echo", {"n": n}) == {"n": n}
            seen = first.statistics()
            assert (seen.failed, seen.retries) == (0, 1)
            assert seen.instances[dead].failures == 1
            assert seen.discovery is not None
            assert seen.discovery.evictions == 1
            for c in (first, second):  # the key's TTL (1 s) runs out: every cache drops it
                await cache_of(c).wait_for(
                    lambda _, c=c: dead not in registered(c, "victim"), timeout=5
                )
            for n in range(4):
                assert await second.call("victim", "echo", {"n": n}) == {"n": n}
            assert (second.statistics().failed, second.statistics().retries) == (0, 0)

    async def test_after_a_server_restart_the_cache_has_no_ghost_and_no_missing_instance(
        self, own_nats_server: NatsServer, namespace: str
    ) -> None:
        writer = await connect(ConnectionSettings(url=own_nats_server.url))
        # The client waits 0.5-1 s before reconnecting: the registry changes in
        # that window reach it only through the resync.
        slow = ConnectionSettings(
            url=own_nats_server.url, reconnect_wait_min=1, reconnect_wait_max=1
        )
        try:
            gone = await register_ghost(writer, namespace, "records")
            kept = await register_ghost(writer, namespace, "records")
            async with Client(namespace=namespace, nats=slow) as c:
                await c.wait_for_instances("records", 2)
                await anyio.to_thread.run_sync(own_nats_server.kill)
                await anyio.to_thread.run_sync(own_nats_server.start)
                await writer.flush()
                bucket = await KVBucket.ensure(
                    writer.jetstream(), registry_bucket_spec(Buckets(namespace))
                )
                await bucket.delete(instance_key("records", gone))
                new = await register_ghost(writer, namespace, "records")
                assert not c.nats.is_connected, "the changes must happen while it is away"
                await cache_of(c).wait_for(
                    lambda _: registered(c, "records") == {kept, new}, timeout=10
                )
                assert cache_of(c).synced
        finally:
            await writer.close()

    async def test_sticky_stays_with_one_instance_and_moves_when_it_dies(
        self, nats_url: str, namespace: str
    ) -> None:
        async with (
            victims(nats_url, namespace, 2) as fleet,
            client(nats_url, namespace, strategies={"victim": "sticky"}) as c,
        ):
            await c.wait_for_instances("victim", 2)
            for n in range(5):
                await c.call("victim", "echo", {"n": n})
            (chosen,) = [i for i, s in c.statistics().instances.items() if s.calls]
            await fleet.kill(chosen)
            for n in range(5):
                await c.call("victim", "echo", {"n": n})
            stats = c.statistics().instances
            (other,) = set(fleet.processes)
        assert (stats[chosen].calls, stats[chosen].failures) == (5, 1)
        assert stats[other].calls == 5


class TestStrategies:
    """Each strategy's distribution over a fleet of three, and its fallback."""

    async def test_round_robin_spreads_calls_evenly(self, nats_url: str, namespace: str) -> None:
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            fleet = await start_fleet(system, 3, instance_settings(nats_url, namespace))
            await c.wait_for_instances("echo", 3)
            answers = Counter([await c.call("echo", "whoami") for _ in range(30)])
            stats = c.statistics()
        assert answers == {e.instance_id: 10 for e in fleet}
        assert all(s.calls == 10 and s.mean_latency for s in stats.instances.values())

    async def test_random_reaches_every_instance(self, nats_url: str, namespace: str) -> None:
        async with (
            ActorSystem() as system,
            client(nats_url, namespace, strategy="random") as c,
        ):
            fleet = await start_fleet(system, 3, instance_settings(nats_url, namespace))
            await c.wait_for_instances("echo", 3)
            answers = Counter([await c.call("echo", "whoami") for _ in range(150)])
        # 50 expected each; fewer than 20 is 5 standard deviations away.
        assert set(answers) == {e.instance_id for e in fleet}
        assert min(answers.values()) >= 20

    async def test_least_outstanding_sends_to_the_instance_with_nothing_in_flight(
        self, nats_url: str, namespace: str
    ) -> None:
        arrivals = Journal()
        gates = {"g1": anyio.Event(), "g2": anyio.Event()}
        shared = {"gates": gates, "arrivals": arrivals}
        held: list[str] = []
        async with (
            ActorSystem() as system,
            client(nats_url, namespace, strategy="least_outstanding") as c,
        ):
            fleet = await start_fleet(system, 3, instance_settings(nats_url, namespace, shared))
            await c.wait_for_instances("echo", 3)

            async def hold(gate: str) -> None:
                held.append(await c.call("echo", "hold", gate))

            async with anyio.create_task_group() as tg:
                for gate in gates:
                    tg.start_soon(hold, gate)
                await arrivals.wait_for(lambda events: len(events) == 2)
                quick = {await c.call("echo", "whoami") for _ in range(6)}
                for gate in gates.values():
                    gate.set()
        assert len(set(held)) == 2  # the second call avoided the first's instance
        assert quick == {e.instance_id for e in fleet} - set(held)

    @pytest.mark.parametrize("strategy", list(CallStrategy))
    async def test_every_strategy_falls_back_from_an_instance_that_does_not_answer(
        self, strategy: CallStrategy, nats_url: str, namespace: str, nats_client: NatsClient
    ) -> None:
        ghost = await register_ghost(nats_client, namespace)
        async with (
            ActorSystem() as system,
            client(nats_url, namespace, strategy=strategy) as c,
        ):
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            await c.wait_for_instances("echo", 2)
            answers = {await c.call("echo", "whoami") for _ in range(6)}
            stats = c.statistics()
        assert answers == {echo.instance_id}
        assert stats.failed == 0
        assert stats.discovery is not None
        assert stats.retries == stats.discovery.evictions <= 1
        assert stats.instances.get(ghost) is None or stats.instances[ghost].calls == 0


class TestRetries:
    """Only 'no responders' is always retried; a timeout only for idempotent methods."""

    async def test_an_error_reply_is_raised_and_never_retried(
        self, nats_url: str, namespace: str
    ) -> None:
        shared: dict[str, Any] = {}
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            await start_fleet(system, 2, instance_settings(nats_url, namespace, shared))
            await c.wait_for_instances("echo", 2)
            with pytest.raises(ServiceError) as info:
                await c.call("echo", "refuse")
            stats = c.statistics()
        assert (info.value.status, info.value.code) == (409, "ALREADY_EXISTS")
        assert info.value.message == "refused on purpose"
        assert shared["refused"] == 1
        assert (stats.retries, stats.failed) == (0, 1)

    async def test_a_standby_refusal_goes_on_to_another_instance(
        self, nats_url: str, namespace: str, nats_client: NatsClient
    ) -> None:
        # An instance still registered ACTIVE that refuses as a STANDBY does
        # for requests queued at its step-down: no handler ran, so the call
        # goes on to another instance, whatever the method.
        standby = await register_ghost(nats_client, namespace, instance_id="echo-5ba4db1e")
        refusals: list[str] = []

        async def refuse(msg: Msg) -> None:
            refusals.append(msg.subject)
            body, headers = standby_refusal(standby, "primary")
            await nats_client.publish(msg.reply, body, headers=headers)

        await nats_client.subscribe(Subjects(namespace).instance_all(standby), cb=refuse)
        await nats_client.flush()
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            await c.wait_for_instances("echo", 2)
            answers = {await c.call("echo", "whoami") for _ in range(4)}
            stats = c.statistics()
        assert answers == {echo.instance_id}
        assert len(refusals) >= 1
        assert (stats.failed, stats.retries) == (0, len(refusals))

    async def test_a_timeout_is_not_retried_unless_the_method_is_idempotent(
        self, nats_url: str, namespace: str
    ) -> None:
        shared: dict[str, Any] = {}
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            await start_fleet(system, 2, instance_settings(nats_url, namespace, shared))
            await c.wait_for_instances("echo", 2)
            with pytest.raises(ServiceError) as info:
                await c.call("echo", "stall_once", timeout=0.3)
            assert shared["stalls"] == 1
            assert (info.value.status, info.value.code) == (504, "DEADLINE_EXCEEDED")
            assert "echo.stall_once did not answer within 0.3 s" in info.value.message
            shared.clear()
            answer = await c.call("echo", "stall_once", timeout=2.0, idempotent=True)
            stats = c.statistics()
        assert shared["stalls"] == 2
        assert answer != shared["stalled"]  # the retry went to the other instance
        assert stats.retries == 1

    async def test_a_timeout_is_retried_when_every_instance_declares_the_method_idempotent(
        self, nats_url: str, namespace: str
    ) -> None:
        shared: dict[str, Any] = {}
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            settings = instance_settings(nats_url, namespace, shared)
            await start_fleet(system, 2, settings, service=DeclaredEcho)
            await c.wait_for_instances("echo", 2)
            view = cache_of(c).snapshot["echo"]
            assert view.idempotent == {"stall_declared"}
            answer = await c.call("echo", "stall_declared", timeout=2.0)
            stats = c.statistics()
        assert shared["stalls"] == 2
        assert answer != shared["stalled"]  # the retry went to the other instance
        assert stats.retries == 1

    async def test_the_trace_id_and_a_deadline_no_later_than_the_callers_propagate(
        self, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            settings = instance_settings(nats_url, namespace)
            await start_fleet(system, 1, settings)
            await start_fleet(system, 1, settings, Front)
            await c.wait_for_instances("front")
            await c.wait_for_instances("echo")
            result = await c.call("front", "relay", {"timeout": 30.0}, timeout=2.0)
        outer, inner = result["outer"], result["inner"]
        assert inner["traceId"] == outer["traceId"]
        assert outer["deadline"] is not None
        assert inner["deadline"] is not None
        assert inner["deadline"] <= outer["deadline"]  # the 30 s asked for was cut to the caller's


class TestWithoutDiscovery:
    """Queue groups serve calls when discovery is declined, off, or the registry is off."""

    async def test_discovery_false_goes_to_the_queue_group(
        self, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system, client(nats_url, namespace) as c:
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            assert await c.call("echo", "whoami", discovery=False) == echo.instance_id
            stats = c.statistics()
        assert stats.discovery is not None
        assert (stats.discovery.hits, stats.discovery.misses) == (0, 0)

    async def test_a_client_with_discovery_off_calls_queue_groups(
        self, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system, client(nats_url, namespace, mode="off") as c:
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            assert await c.call("echo", "whoami") == echo.instance_id
            assert c.statistics().discovery is None
            assert c.cache is None
            with pytest.raises(RuntimeError, match="discovery is off"):
                await c.wait_for_instances("echo")

    async def test_an_instance_without_registration_runs_no_discovery_and_calls_groups(
        self, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system, client(nats_url, namespace, mode="off") as c:
            await start_fleet(system, 1, instance_settings(nats_url, namespace))
            (front,) = await start_fleet(
                system, 1, instance_settings(nats_url, namespace, registration=False), Front
            )
            children = [info.id for info in await front.ref.ask(WhichChildren())]
            result = await c.call("front", "relay", {"timeout": 2.0, "method": "whoami"})
        assert children == ["connection", "service"]
        assert result["inner"].startswith("echo-")

    async def test_a_queue_group_nobody_serves_is_a_clear_503(
        self, nats_url: str, namespace: str
    ) -> None:
        async with client(nats_url, namespace, mode="off") as c:
            with pytest.raises(ServiceError) as info:
                await c.call("nobody", "hello")
        assert info.value.status == 503
        assert "no instance of 'nobody' serves 'hello'" in info.value.message


class TestBadInput:
    """Every bad argument is refused before anything is sent, saying what is wrong."""

    @pytest.mark.parametrize(
        ("args", "kwargs", "message"),
        [
            (("No Such", "m"), {}, "service name 'No Such' must match"),
            (("echo", "a.b"), {}, "method name 'a.b' must match"),
            (("echo", "whoami"), {"timeout": 0}, "timeout must be > 0 seconds"),
            (("echo", "whoami"), {"timeout": float("nan")}, "timeout must be > 0 seconds"),
            (("echo", "whoami", object()), {}, "params of echo.whoami are not JSON"),
        ],
    )
    async def test_invalid_calls(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        message: str,
        nats_url: str,
        namespace: str,
    ) -> None:
        async with client(nats_url, namespace) as c:
            with pytest.raises(ValueError, match=message):
                await c.call(*args, **kwargs)
            assert c.statistics().calls == 0

    async def test_a_client_must_be_started_before_it_calls(self, nats_url: str) -> None:
        with pytest.raises(RuntimeError, match="not started"):
            await Client(url=nats_url).call("echo", "whoami")

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [({"namespace": "Bad NS"}, "namespace 'Bad NS'"), ({"kv_timeout": 0}, "kv_timeout")],
    )
    def test_invalid_clients(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            Client(**kwargs)


class TestRegistryUnreachable:
    """With the registry down, cached instances are still called; without, a clear 503."""

    async def test_a_cached_answer_is_used_and_an_uncached_service_fails_clearly(
        self, namespace: str
    ) -> None:
        with NatsCluster(3, name=f"{namespace}-cluster") as cluster:
            # A registry made with one copy (aegis makes three on a cluster):
            # killing its node takes it away while the other nodes keep
            # carrying requests.
            stream_node, other = await registry_placement(cluster, namespace)
            nc = await connect(ConnectionSettings(url=other.url))
            try:
                async with (
                    ActorSystem() as system,
                    ttl_cache(nc, namespace, kv_timeout=0.5, cache_ttl=10) as t,
                ):
                    settings = instance_settings(other.url, namespace).model_copy(
                        update={
                            "heartbeat": HeartbeatSettings(ttl=30, interval=10),
                            "discovery": DiscoverySettings(mode="off"),
                            "kv_timeout": 0.5,
                        }
                    )
                    (echo,) = await start_fleet(system, 1, settings)
                    await wait_registered(nc, namespace, "echo", echo.instance_id)
                    assert await t.caller.call("echo", "whoami") == echo.instance_id
                    await anyio.to_thread.run_sync(stream_node.kill)
                    t.clock.advance(10)  # the cached view is due for a reread
                    assert await t.caller.call("echo", "whoami") == echo.instance_id
                    with pytest.raises(ServiceError) as info:
                        await t.caller.call("other", "whoami")
                    stats = t.cache.statistics()
            finally:
                await nc.close()
        assert (stats.stale_serves, stats.load_failures) == (1, 1)
        assert info.value.status == 503
        assert "cannot reach the service registry" in info.value.message
        assert "no instance of 'other' is cached" in info.value.message


async def registry_placement(cluster: NatsCluster, namespace: str) -> tuple[NatsServer, NatsServer]:
    """Make the registry with one copy; return the node holding it, and another one."""
    nc = await connect(ConnectionSettings(url=cluster.urls[0]))
    try:
        js = nc.jetstream(timeout=5)
        spec = dataclasses.replace(registry_bucket_spec(Buckets(namespace)), replicas=1)
        bucket = await KVBucket.ensure(js, spec)
        info = await js.stream_info(bucket.stream)
    finally:
        await nc.close()
    assert info.cluster is not None
    (stream_node,) = [s for s in cluster.servers if s.name == info.cluster.leader]
    return stream_node, next(s for s in cluster.servers if s is not stream_node)


def test_discovery_modes_are_the_config_words() -> None:
    assert [m.value for m in DiscoveryMode] == ["watch", "ttl", "off"]
