"""What the discovery and call tests share: a service to call, fleets of it, ghosts, victims."""

from __future__ import annotations

import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from nats.aio.client import Client as NatsClient

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    DiscoveryMode,
    DiscoverySettings,
    HeartbeatSettings,
    InstanceSettings,
    InstanceStatus,
    KVBucket,
    RunningInstance,
    ServiceActor,
    ServiceError,
    ServiceInstance,
    Subjects,
    current_request,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._discovery.cache import DiscoveryCacheActor
from aegis_actors._discovery.caller import Caller
from aegis_actors._discovery.snapshot import DiscoveryCache
from aegis_actors._models import utc_now
from aegis_actors._registry.store import registry_bucket_spec

VICTIM_SCRIPT = Path(__file__).with_name("instance_process.py")


class Echo(ServiceActor):
    """Answers who it is; holds, fails or stalls on request (state shared via `settings`)."""

    service_name = "echo"

    @property
    def shared(self) -> dict[str, Any]:
        shared: dict[str, Any] = self.settings["shared"]
        return shared

    @rpc(max_concurrency=64)
    async def whoami(self) -> str:
        return self.instance_id

    @rpc(max_concurrency=64)
    async def hold(self, params: str) -> str:
        """Say it arrived (`arrivals`, a Journal), then answer once the test opens gate `params`."""
        if "arrivals" in self.shared:
            self.shared["arrivals"].record(self.instance_id)
        await self.shared["gates"][params].wait()
        return self.instance_id

    @rpc
    async def refuse(self) -> None:
        self.shared["refused"] = self.shared.get("refused", 0) + 1
        raise ServiceError(409, "ALREADY_EXISTS", "refused on purpose")

    @rpc(max_concurrency=64)
    async def stall_once(self) -> str:
        """The first call in the fleet hangs past its deadline; later ones answer."""
        self.shared["stalls"] = self.shared.get("stalls", 0) + 1
        if self.shared["stalls"] == 1:
            self.shared["stalled"] = self.instance_id
            await anyio.sleep_forever()  # cancelled at the caller's deadline
        return self.instance_id

    @rpc
    async def context(self) -> dict[str, Any]:
        request = current_request()
        assert request is not None
        return {"traceId": request.trace_id, "deadline": request.deadline}


class Front(ServiceActor):
    """Calls `echo` from inside its handlers (nested calls)."""

    service_name = "front"

    @rpc(max_concurrency=16)
    async def relay(self, params: dict[str, Any]) -> dict[str, Any]:
        request = current_request()
        assert request is not None
        inner = await self.call("echo", params.get("method", "context"), timeout=params["timeout"])
        return {
            "outer": {"traceId": request.trace_id, "deadline": request.deadline},
            "inner": inner,
        }


def instance_settings(
    url: str, namespace: str, shared: dict[str, Any] | None = None, **options: Any
) -> InstanceSettings:
    """Fast heartbeats (key TTL 2 s) so tests see expiry quickly."""
    return InstanceSettings(
        nats=ConnectionSettings(url=url),
        namespace=namespace,
        heartbeat=HeartbeatSettings(ttl=2, interval=0.5),
        settings={"shared": shared if shared is not None else {"gates": {}}},
        **options,
    )


async def start_fleet(
    system: ActorSystem, count: int, settings: InstanceSettings, service: type[ServiceActor] = Echo
) -> list[RunningInstance]:
    return [await start_instance(system, service, settings) for _ in range(count)]


async def register_ghost(
    client: NatsClient,
    namespace: str,
    service: str = "echo",
    *,
    instance_id: str | None = None,
    status: InstanceStatus = InstanceStatus.ACTIVE,
    sticky_active_group: str | None = None,
    ttl: int = 60,
) -> str:
    """Write a registry record for an instance that does not run: like one SIGKILLed
    before its key expired (its subject has no subscriber: "no responders")."""
    instance_id = instance_id or f"{service}-dead{secrets.token_hex(2)}"
    record = ServiceInstance(
        service_name=service,
        instance_id=instance_id,
        version="1.0.0",
        status=status,
        sticky_active_group=sticky_active_group,
        last_heartbeat=utc_now(),
    )
    bucket = await KVBucket.ensure(client.jetstream(), registry_bucket_spec(Buckets(namespace)))
    await bucket.put(
        instance_key(service, instance_id),
        record.model_dump_json(exclude_none=True).encode(),
        ttl=ttl,
    )
    return instance_id


async def wait_registered(
    client: NatsClient, namespace: str, service: str, instance_id: str
) -> None:
    """Wait until the registry holds the instance's record (its first heartbeat may fail)."""
    kv = await client.jetstream().key_value(Buckets(namespace).registry)
    watcher = await kv.watch(instance_key(service, instance_id))
    try:
        with anyio.fail_after(10):
            while True:
                entry = await watcher.updates(timeout=10)
                if entry is not None and entry.operation is None and entry.value:
                    return
    finally:
        await watcher.stop()


class Victims:
    """Instances of `victim` (tests/instance_process.py), each in its own process, to SIGKILL."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        ttl: int = 1,
        interval: float = 0.25,
        group: str | None = None,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.ttl = ttl
        self.interval = interval
        self.group = group
        """A sticky-active group to join (same TTL and interval for its leadership key)."""
        self.processes: dict[str, Process] = {}

    async def start(self) -> str:
        """Start one; return its instance id once it is registered."""
        command = [
            sys.executable, str(VICTIM_SCRIPT), self.url, self.namespace,
            str(self.ttl), str(self.interval), *([self.group] if self.group else []),
        ]  # fmt: skip
        process = await anyio.open_process(command, stderr=None)
        try:
            assert process.stdout is not None
            output = b""
            with anyio.fail_after(15):
                while not output.endswith(b"\n"):
                    output += await process.stdout.receive()
        except BaseException:
            await self._end(process)
            raise
        instance_id = output.decode().strip()
        self.processes[instance_id] = process
        return instance_id

    async def kill(self, instance_id: str) -> None:
        """SIGKILL: no deregistration; the key stays until its TTL runs out."""
        process = self.processes.pop(instance_id)
        process.send_signal(signal.SIGKILL)
        await self._end(process)

    async def close(self) -> None:
        for instance_id in list(self.processes):
            await self.kill(instance_id)

    @staticmethod
    async def _end(process: Process) -> None:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


@asynccontextmanager
async def victims(url: str, namespace: str, count: int) -> AsyncIterator[Victims]:
    fleet = Victims(url, namespace)
    try:
        for _ in range(count):
            await fleet.start()
        yield fleet
    finally:
        await fleet.close()


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class TtlCache:
    cache: DiscoveryCache
    caller: Caller
    clock: FakeClock
    system: ActorSystem


@asynccontextmanager
async def ttl_cache(  # a Caller on a TTL cache whose clock the test moves
    client: NatsClient, namespace: str, *, kv_timeout: float = 2.0, **options: Any
) -> AsyncIterator[TtlCache]:
    settings = DiscoverySettings(mode=DiscoveryMode.TTL, **options)
    clock = FakeClock()
    cache = DiscoveryCache(DiscoveryMode.TTL, clock=clock)
    async with ActorSystem() as system:
        await system.spawn(
            lambda: DiscoveryCacheActor(
                cache, client, Buckets(namespace), settings, kv_timeout=kv_timeout
            ),
            name="discovery",
        )
        caller = Caller(lambda: client, Subjects(namespace), settings, cache)
        try:
            yield TtlCache(cache, caller, clock, system)
        finally:
            await caller.close()
