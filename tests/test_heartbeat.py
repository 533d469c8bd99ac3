"""Registration: the instance's key, its TTL, heartbeats, expiry, failures and recovery."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from nats.aio.client import Client
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aegis_actors import (
    ActorStartError,
    ActorSystem,
    ConfigError,
    HeartbeatSettings,
    InstanceSettings,
    InstanceStatus,
    NatsServer,
    ServiceActor,
    ServiceInstance,
    WhichChildren,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._registry.heartbeat import HealthQuery
from tests.probes import Journal, watch_logs

pytestmark = pytest.mark.nats


class Pinger(ServiceActor):
    service_name = "pinger"
    version = "2.0.1"

    @rpc
    async def ping(self) -> str:
        return "pong"

    async def health(self) -> bool:
        verdict: dict[str, bool] = self.settings.get("health", {"ok": True})
        return verdict["ok"]


class RegistryWatch:
    """Every change of the registry bucket, as (operation, key, record-or-None)."""

    def __init__(self) -> None:
        self.journal = Journal()

    async def run(self, kv: KeyValue, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        watcher = await kv.watchall()
        task_status.started()
        try:
            async for entry in watcher:
                if entry is None:
                    continue
                op = entry.operation or "PUT"
                record = ServiceInstance.model_validate_json(entry.value) if op == "PUT" else None
                self.journal.record(op, entry.key, record)
        finally:
            await watcher.stop()

    def puts(self, key: str) -> list[ServiceInstance]:
        return [e[2] for e in self.journal.events if e[0] == "PUT" and e[1] == key]

    async def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        await self.journal.wait_for(lambda events: predicate(), timeout)


@pytest.fixture
async def registry(nats_client: Client, namespace: str) -> KeyValue:
    from aegis_actors import KVBucket
    from aegis_actors._registry.store import registry_bucket_spec

    await KVBucket.ensure(nats_client.jetstream(), registry_bucket_spec(Buckets(namespace)))
    return await nats_client.jetstream().key_value(Buckets(namespace).registry)


@asynccontextmanager
async def watching(kv: KeyValue) -> AsyncIterator[RegistryWatch]:
    # A context manager, not a fixture: a task group must open and close in one task.
    watch = RegistryWatch()
    async with anyio.create_task_group() as tg:
        await tg.start(watch.run, kv)
        yield watch
        tg.cancel_scope.cancel()


def fast(settings: InstanceSettings, **heartbeat: Any) -> InstanceSettings:
    return settings.model_copy(update={"heartbeat": HeartbeatSettings(**heartbeat)})


class TestRegistration:
    """The key appears with the record's fields and a per-key TTL, and goes at a graceful stop."""

    async def test_the_key_carries_the_record_and_its_ttl(
        self, instance_settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        bucket = Buckets(namespace).registry
        async with ActorSystem() as system:
            running = await start_instance(
                system, Pinger, fast(instance_settings, ttl=3, interval=1)
            )
            key = instance_key("pinger", running.instance_id)
            msg = await nats_client.jetstream().get_msg(
                f"KV_{bucket}", subject=f"$KV.{bucket}.{key}"
            )
            await system.stop(running.ref)
        assert msg.headers is not None
        assert msg.headers["Nats-TTL"] == "3s"
        record = ServiceInstance.model_validate_json(msg.data or b"")
        assert record.service_name == "pinger"
        assert record.instance_id == running.instance_id
        assert record.version == "2.0.1"
        assert record.status is InstanceStatus.ACTIVE
        assert record.last_heartbeat.tzinfo is not None
        raw = (msg.data or b"").decode()
        assert '"lastHeartbeat":"' in raw
        assert raw.split('"lastHeartbeat":"')[1].split('"')[0].endswith("Z")
        assert {"host", "pid"} <= set(record.metadata)

    async def test_heartbeats_keep_the_key_alive_past_several_ttls(
        self, instance_settings: InstanceSettings, registry: KeyValue
    ) -> None:
        async with watching(registry) as watch, ActorSystem() as system:
            running = await start_instance(
                system, Pinger, fast(instance_settings, ttl=1, interval=0.2)
            )
            key = instance_key("pinger", running.instance_id)
            # 12 writes 0.2 s apart span more than twice the 1 s TTL.
            await watch.wait(lambda: len(watch.puts(key)) >= 12)
            ops = [e[0] for e in watch.journal.events if e[1] == key]
            await system.stop(running.ref)
        assert set(ops) == {"PUT"}, "the key never expired between heartbeats"
        beats = [r.last_heartbeat for r in watch.puts(key)]
        assert beats == sorted(beats)

    async def test_a_graceful_stop_deletes_the_key_at_once(
        self, instance_settings: InstanceSettings, registry: KeyValue
    ) -> None:
        import nats.js.errors

        async with ActorSystem() as system:
            running = await start_instance(system, Pinger, instance_settings)
            key = instance_key("pinger", running.instance_id)
            assert (await registry.get(key)).value
            await system.stop(running.ref)
            with pytest.raises(nats.js.errors.KeyNotFoundError):
                await registry.get(key)

    async def test_a_key_purged_by_hand_is_registered_again(
        self, instance_settings: InstanceSettings, registry: KeyValue
    ) -> None:
        async with watching(registry) as watch, ActorSystem() as system:
            running = await start_instance(
                system, Pinger, fast(instance_settings, ttl=2, interval=0.2)
            )
            key = instance_key("pinger", running.instance_id)
            await registry.purge(key)
            await watch.wait(
                lambda: [e[0] for e in watch.journal.events if e[1] == key][-2:] == ["PURGE", "PUT"]
            )
            assert (await registry.get(key)).value
            await system.stop(running.ref)

    async def test_many_instances_in_one_process(
        self, instance_settings: InstanceSettings, registry: KeyValue
    ) -> None:
        async with ActorSystem() as system:
            running = [await start_instance(system, Pinger, instance_settings) for _ in range(20)]
            keys = await registry.keys()
            assert sorted(keys) == sorted(instance_key("pinger", r.instance_id) for r in running)
            for r in running:
                await system.stop(r.ref)
        import nats.js.errors

        with pytest.raises(nats.js.errors.NoKeysError):
            await registry.keys()

    def test_registration_can_be_turned_off(self, instance_settings: InstanceSettings) -> None:
        off = instance_settings.model_copy(update={"registration": False})

        async def main() -> list[str]:
            async with ActorSystem() as system:
                running = await start_instance(system, Pinger, off)
                children = await running.ref.ask(WhichChildren())
                await system.stop(running.ref)
            return [c.id for c in children]

        assert anyio.run(main) == ["connection", "service"]


class TestExpiry:
    """An instance that dies without deregistering disappears when its TTL runs out."""

    async def test_sigkill_expires_the_key_within_ttl_plus_one_second_and_watchers_see_it(
        self, nats_url: str, namespace: str, registry: KeyValue
    ) -> None:
        script = Path(__file__).with_name("instance_process.py")
        command = [sys.executable, str(script), nats_url, namespace, "1", "0.25"]
        async with await anyio.open_process(command, stderr=None) as process:
            try:
                async with watching(registry) as watch:
                    await self._kill_and_watch(process, watch)
            finally:
                if process.returncode is None:
                    process.kill()

    async def _kill_and_watch(self, process: Process, watch: RegistryWatch) -> None:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(10):
            while not output.endswith(b"\n"):
                output += await process.stdout.receive()
        key = instance_key("victim", output.decode().strip())
        await watch.wait(lambda: len(watch.puts(key)) >= 2)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        with anyio.fail_after(1 + 1.0):  # TTL + 1 s
            await watch.wait(lambda: watch.journal.events[-1][:2] == ("PURGE", key))


class TestFailures:
    """Failed heartbeats are retried; after enough the instance says it is UNHEALTHY."""

    async def test_heartbeats_fail_while_the_server_is_paused_and_recover_after(
        self, own_nats_server: NatsServer, namespace: str
    ) -> None:
        from aegis_actors import ConnectionSettings

        settings = InstanceSettings(
            nats=ConnectionSettings(url=own_nats_server.url),
            namespace=namespace,
            kv_timeout=0.3,
            heartbeat=HeartbeatSettings(ttl=5, interval=0.2, unhealthy_after=2, retry_min=0.05),
        )
        async with ActorSystem() as system:
            running = await start_instance(system, Pinger, settings)
            with watch_logs() as logs:
                own_nats_server.pause()
                try:
                    await logs.wait_event("heartbeats keep failing: instance is UNHEALTHY")
                finally:
                    own_nats_server.resume()
                await logs.wait_event("heartbeat recovered")
                await logs.wait_for(
                    lambda events: (
                        [e[1]["new"] for e in events if e[0] == "status changed"][-1:]
                        == [InstanceStatus.ACTIVE]
                    )
                )
            failures = logs.entries("heartbeat failed")
            assert [f["failures"] for f in failures[:2]] == [1, 2]
            assert all(f["log_level"] == "warning" for f in failures)
            await system.stop(running.ref)

    async def test_a_health_hook_saying_no_marks_the_instance_unhealthy(
        self, instance_settings: InstanceSettings, registry: KeyValue
    ) -> None:
        verdict = {"ok": True}
        settings = fast(instance_settings, ttl=2, interval=0.1).model_copy(
            update={"settings": {"health": verdict}}
        )
        async with watching(registry) as watch, ActorSystem() as system:
            running = await start_instance(system, Pinger, settings)
            key = instance_key("pinger", running.instance_id)

            def last_status() -> InstanceStatus | None:
                puts = watch.puts(key)
                return puts[-1].status if puts else None

            await watch.wait(lambda: last_status() is InstanceStatus.ACTIVE)
            verdict["ok"] = False
            await watch.wait(lambda: last_status() is InstanceStatus.UNHEALTHY)
            verdict["ok"] = True
            await watch.wait(lambda: last_status() is InstanceStatus.ACTIVE)
            await system.stop(running.ref)

    async def test_a_deleted_registry_bucket_is_created_again(
        self, instance_settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        js = nats_client.jetstream()
        async with ActorSystem() as system:
            running = await start_instance(
                system, Pinger, fast(instance_settings, ttl=2, interval=0.1)
            )
            with watch_logs() as logs:
                await js.delete_key_value(Buckets(namespace).registry)
                await logs.wait_event("registered")
            kv = await js.key_value(Buckets(namespace).registry)
            assert (await kv.get(instance_key("pinger", running.instance_id))).value
            await system.stop(running.ref)

    async def test_a_crashed_heartbeat_restarts_without_the_service_noticing(
        self, instance_settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        from nats.js.api import KeyValueConfig

        js, bucket = nats_client.jetstream(), Buckets(namespace).registry
        async with ActorSystem() as system:
            running = await start_instance(
                system, Pinger, fast(instance_settings, ttl=2, interval=0.1)
            )
            children = {c.id: c for c in await running.ref.ask(WhichChildren())}
            service, heartbeat = children["service"].ref, children["heartbeat"].ref
            service_generation = service.generation
            with watch_logs() as logs:
                # A bucket remade with a 10-byte value limit refuses the record
                # with an error the heartbeat does not expect: it crashes.
                await js.delete_key_value(bucket)
                await js.create_key_value(
                    KeyValueConfig(bucket=bucket, max_value_size=10, limit_marker_ttl=60)
                )
                await logs.wait_event("restarting child")
                await js.delete_key_value(bucket)  # the restarted one makes it right
                await logs.wait_event("registered")
            restarts = logs.entries("restarting child")
            assert {r["child"] for r in restarts} == {"heartbeat"}
            assert heartbeat.generation >= 2
            assert service.generation == service_generation
            assert await service.ask_priority(HealthQuery()) is True
            await system.stop(running.ref)

    async def test_a_registry_bucket_without_ttl_support_is_refused_clearly(
        self, instance_settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        await nats_client.jetstream().create_key_value(bucket=Buckets(namespace).registry)
        async with ActorSystem() as system:
            with pytest.raises(ActorStartError) as info:
                await start_instance(system, Pinger, instance_settings)
        cause: BaseException | None = info.value
        while isinstance(cause, ActorStartError):
            cause = cause.reason
        assert isinstance(cause, ConfigError)
        assert "per-key TTL" in str(cause)


class TestSettings:
    """Heartbeat settings that cannot work are refused."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"ttl": 5, "interval": 5}, "shorter than the key TTL"),
            ({"ttl": 0}, "greater than or equal to 1"),
            ({"ttl": 1.5}, "valid integer"),
            ({"unhealthy_after": 0}, "greater than or equal to 1"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            HeartbeatSettings(**kwargs)
