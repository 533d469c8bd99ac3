"""Discovery: strategies, settings, and the cache (TTL, negative answers, filters, evictions)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from pydantic import ValidationError

from aegis_actors import (
    Actor,
    ActorSystem,
    CallStrategy,
    ConfigError,
    ConnectionSettings,
    DiscoveryMode,
    DiscoverySettings,
    InstanceStatus,
    ServiceError,
    ServiceInstance,
)
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._config_file import load_config
from aegis_actors._discovery.cache import DiscoveryCacheActor
from aegis_actors._discovery.snapshot import DiscoveryCache
from aegis_actors._discovery.strategies import (
    LeastOutstanding,
    RandomPick,
    RoundRobin,
    Sticky,
    picker,
)
from aegis_actors._models import utc_now
from aegis_actors._watch import KeyChanged, WatchSynced, WatchTopic
from tests.discovery_support import instance_settings, register_ghost, start_fleet, ttl_cache

IDS = ("a", "b", "c")


class TestStrategies:
    """Each strategy's distribution, and how it falls back when an instance failed."""

    def test_round_robin_takes_each_in_turn(self) -> None:
        rr = RoundRobin(start=0)
        assert [rr.pick(IDS, None) for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]

    def test_fresh_callers_do_not_all_start_with_the_same_instance(self) -> None:
        firsts = {RoundRobin().pick(IDS, None) for _ in range(60)}
        firsts |= {LeastOutstanding({}).pick(IDS, None) for _ in range(60)}
        assert firsts == set(IDS)

    def test_round_robin_skips_what_this_call_tried(self) -> None:
        rr = RoundRobin(start=0)
        assert rr.pick(IDS, None) == "a"
        assert rr.pick(IDS, {"b"}) == "c"
        assert rr.pick(IDS, {"a", "c"}) == "b"
        assert rr.pick(IDS, set(IDS)) is None
        assert rr.pick((), None) is None

    def test_random_reaches_every_instance_and_skips_tried_ones(self) -> None:
        pick = RandomPick(random.Random(7))
        counts = dict.fromkeys(IDS, 0)
        for _ in range(3000):
            counts[pick.pick(IDS, None) or ""] += 1
        assert all(800 < n < 1200 for n in counts.values()), counts
        assert {pick.pick(IDS, {"a", "b"}) for _ in range(20)} == {"c"}
        assert pick.pick(IDS, set(IDS)) is None
        assert pick.pick((), None) is None

    def test_sticky_keeps_its_instance_while_it_can_be_called(self) -> None:
        sticky = Sticky()
        first = sticky.pick(IDS, None)
        assert [sticky.pick(IDS, None) for _ in range(5)] == [first] * 5

    def test_sticky_moves_when_its_instance_is_gone_or_failed_and_stays_moved(self) -> None:
        sticky = Sticky()
        first = sticky.pick(IDS, None)
        assert first in IDS
        assert sticky.pick(IDS, None) == first
        others = tuple(i for i in IDS if i != first)
        moved = sticky.pick(others, None)  # the first left the view
        assert moved in others
        assert sticky.pick(IDS, None) == moved  # the first coming back does not move it back
        again = sticky.pick(IDS, {moved})  # the new one failed in this call
        assert again not in (None, moved)
        assert sticky.pick(IDS, None) == again

    def test_least_outstanding_picks_the_idlest_and_rotates_ties(self) -> None:
        outstanding = {"a": 2, "b": 1, "c": 3}
        least = LeastOutstanding(outstanding, start=0)
        assert least.pick(IDS, None) == "b"
        assert least.pick(IDS, {"b"}) == "a"
        outstanding.clear()
        assert [least.pick(IDS, None) for _ in range(3)] == ["c", "a", "b"]
        assert least.pick(IDS, set(IDS)) is None

    @pytest.mark.parametrize("strategy", list(CallStrategy))
    def test_every_strategy_has_a_picker_that_respects_tried(self, strategy: CallStrategy) -> None:
        chosen = picker(strategy, {})
        assert chosen.pick(IDS, {"a", "c"}) == "b"
        assert chosen.pick(IDS, set(IDS)) is None


class TestSettings:
    """Bad discovery settings are refused with a message that says what is wrong."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"mode": "sometimes"}, "'watch', 'ttl' or 'off'"),
            ({"strategy": "fastest"}, "'round_robin', 'random', 'sticky' or 'least_outstanding'"),
            ({"strategies": {"Bad Name": "random"}}, "service name 'Bad Name' must match"),
            ({"cache_ttl": 0}, "greater than 0"),
            ({"attempt_share": 0}, "greater than 0"),
            ({"attempt_share": 1.5}, "less than or equal to 1"),
            ({"max_attempts": 0}, "greater than or equal to 1"),
            ({"watch_heartbeat": 0.01}, "greater than or equal to 0.1"),
            ({"ttl": 3}, "Extra inputs are not permitted"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            DiscoverySettings.model_validate(kwargs)

    def test_a_config_file_sets_discovery_per_service(self, tmp_path: Path) -> None:
        path = tmp_path / "fleet.toml"
        path.write_text(
            '[nats]\nurl = "nats://127.0.0.1:4222"\n'
            '[[services]]\nclass = "tests.fleet_services:Hello"\n'
            '[services.discovery]\nmode = "ttl"\ncache_ttl = 3.0\n'
            'strategies = { orders = "least_outstanding" }\n'
        )
        (service,) = load_config(path, environ={}).services
        settings = service.instance_settings(ConnectionSettings(), "").discovery
        assert settings.mode is DiscoveryMode.TTL
        assert settings.cache_ttl == 3.0
        assert settings.strategy_for("orders") is CallStrategy.LEAST_OUTSTANDING

    def test_a_bad_discovery_table_names_file_and_key(self, tmp_path: Path) -> None:
        path = tmp_path / "fleet.toml"
        path.write_text(
            '[[services]]\nclass = "tests.fleet_services:Hello"\n'
            '[services.discovery]\nstrategy = "fastest"\n'
        )
        with pytest.raises(ConfigError, match=r"fleet.toml: services\[0\].discovery.strategy"):
            load_config(path, environ={})

    def test_a_strategy_per_target_service(self) -> None:
        settings = DiscoverySettings(strategy="random", strategies={"orders": "sticky"})
        assert settings.strategy_for("orders") is CallStrategy.STICKY
        assert settings.strategy_for("prices") is CallStrategy.RANDOM


@pytest.mark.nats
class TestTtlCache:
    """Without a watch, a service's instances are read on a miss and kept `cache_ttl`."""

    async def test_a_miss_reads_the_registry_then_calls_hit_until_the_ttl_passes(
        self, nats_client: Client, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            async with ttl_cache(nats_client, namespace, cache_ttl=10) as t:
                for _ in range(4):
                    assert await t.caller.call("echo", "whoami") == echo.instance_id
                first = t.cache.statistics()
                t.clock.advance(10)
                await t.caller.call("echo", "whoami")
                second = t.cache.statistics()
        assert (first.misses, first.hits, first.loads) == (1, 3, 1)
        assert (second.misses, second.hits, second.loads) == (2, 3, 2)

    async def test_no_instances_is_a_clear_503_remembered_for_the_negative_ttl(
        self, nats_client: Client, namespace: str
    ) -> None:
        async with ttl_cache(nats_client, namespace, negative_ttl=1) as t:
            with pytest.raises(ServiceError) as info:
                await t.caller.call("nobody", "hello")
            assert info.value.status == 503
            assert info.value.code == "SERVICE_UNAVAILABLE"
            assert "no healthy instance of 'nobody' (none registered)" in info.value.message
            with pytest.raises(ServiceError):
                await t.caller.call("nobody", "hello")
            remembered = t.cache.statistics().loads
            t.clock.advance(1)
            with pytest.raises(ServiceError):
                await t.caller.call("nobody", "hello")
            assert (remembered, t.cache.statistics().loads) == (1, 2)

    async def test_unhealthy_instances_and_standbys_of_sticky_groups_are_not_called(
        self, nats_client: Client, namespace: str
    ) -> None:
        active = await register_ghost(nats_client, namespace, "grp", sticky_active_group="g")
        await register_ghost(
            nats_client, namespace, "grp", status=InstanceStatus.STANDBY, sticky_active_group="g"
        )
        await register_ghost(nats_client, namespace, "plain", status=InstanceStatus.UNHEALTHY)
        standby = await register_ghost(
            nats_client, namespace, "plain", status=InstanceStatus.STANDBY
        )
        async with ttl_cache(nats_client, namespace) as t:
            group = await t.cache.fetch("grp", timeout=2)
            plain = await t.cache.fetch("plain", timeout=2)
        assert group.ids == (active,)
        assert len(group.instances) == 2
        assert plain.ids == (standby,)  # STANDBY outside a sticky group may be called
        assert plain.describe() == "2 registered: 1 STANDBY, 1 UNHEALTHY"

    async def test_an_evicted_instance_stays_out_until_it_writes_its_record_again(
        self, nats_client: Client, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            (echo,) = await start_fleet(system, 1, instance_settings(nats_url, namespace))
            ghost = await register_ghost(nats_client, namespace)
            async with ttl_cache(nats_client, namespace, cache_ttl=10) as t:
                for _ in range(4):  # the ghost is picked once, fails, is evicted
                    assert await t.caller.call("echo", "whoami") == echo.instance_id
                assert t.caller.statistics().retries == 1
                t.clock.advance(10)
                refreshed = await t.cache.fetch("echo", timeout=2)
                await register_ghost(nats_client, namespace, instance_id=ghost)
                t.clock.advance(10)
                rewritten = await t.cache.fetch("echo", timeout=2)
                evictions = t.cache.statistics().evictions
        assert refreshed.ids == (echo.instance_id,)
        assert refreshed.evicted == {ghost}
        assert "1 evicted after failed calls" in refreshed.describe()
        assert set(rewritten.ids) == {echo.instance_id, ghost}
        assert evictions == 1


class Swallow(Actor):
    """Stands in for a watch actor: takes `Subscribe` and says nothing."""

    async def on_receive(self, message: Any) -> Any:
        return None


def record(service: str, instance_id: str) -> bytes:
    instance = ServiceInstance(
        service_name=service,
        instance_id=instance_id,
        version="1.0.0",
        status=InstanceStatus.ACTIVE,
        last_heartbeat=utc_now(),
    )
    return instance.model_dump_json().encode()


@pytest.mark.nats
class TestWatchCache:
    """Fed by a watch: changes apply at once; a synced watch names every live key."""

    async def test_a_synced_watch_drops_the_instances_it_no_longer_names(
        self, nats_client: Client
    ) -> None:
        cache = DiscoveryCache(DiscoveryMode.WATCH)
        topic = WatchTopic()
        async with ActorSystem() as system:
            topic.source = await system.spawn(Swallow, name="watch")
            actor = await system.spawn(
                lambda: DiscoveryCacheActor(
                    cache, nats_client, Buckets(), DiscoverySettings(), topic=topic
                ),
                name="discovery",
            )
            for n, instance_id in enumerate(("echo-0000000a", "echo-0000000b"), start=1):
                key = instance_key("echo", instance_id)
                await actor.tell(KeyChanged("r", key, record("echo", instance_id), n, 0.0))
            await actor.tell(WatchSynced("r", False, frozenset()))
            await cache.wait_for(lambda s: "echo" in s and not cache.synced, timeout=2)
            stale = cache.lookup("echo")
            await actor.tell(
                WatchSynced("r", True, frozenset({instance_key("echo", "echo-0000000b")}))
            )
            await cache.wait_for(lambda s: len(s["echo"].ids) == 1, timeout=2)
            fresh = cache.lookup("echo")
        assert stale is not None
        assert stale.ids == ("echo-0000000a", "echo-0000000b")
        assert fresh is not None
        assert fresh.ids == ("echo-0000000b",)
        stats = cache.statistics()
        assert (stats.stale_serves, stats.hits) == (1, 1)
