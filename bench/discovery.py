"""Discovery and calls: lookups, propagation, call() vs nc.request(), failover.

Each figure is printed beside a ceiling measured in the same run:
  lookups:     `cache.lookup()` + a round-robin pick, vs a bare dict get + tuple index;
  propagation: a registration reaching the discovery cache, vs nats-py's own KV watcher
               seeing the same write;
  calls:       `Client.call()` through discovery, vs nats-py's `nc.request()` to the same
               instance subject with the same body, at 1 / 10 / 100 in flight; the responder
               is a bare nats-py one in its own process (the client is what is compared), then
               an aegis ServiceActor (end to end, for information). The `Requester` column is
               the shared reply inbox alone (no aegis headers, no envelope): the mechanism;
               the "cpu us" columns are the client process's CPU per request, the cost the
               goal is about (on 2 cores the server and the responder share the machine, so
               the rate also depends on them);
  failover:    SIGKILL of the instance being called until the next successful call.
Goals (issue 4): call() at 100 in flight >= 1.5x the throughput of nc.request(), p50
within 1.1x; registration reaches the cache within 100 ms.
Run: `python -m bench.discovery` (asyncio, then uvloop when installed).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import nats
from nats.aio.msg import Msg

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    DiscoverySettings,
    HeartbeatSettings,
    InstanceSettings,
    InstanceStatus,
    KVBucket,
    LogFormat,
    NatsServer,
    ServiceActor,
    ServiceInstance,
    Subjects,
    configure_logging,
    rpc,
    run,
    start_instance,
)
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._discovery.strategies import RoundRobin
from aegis_actors._eventloop import loop_name, uvloop_available
from aegis_actors._models import utc_now
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._requester import Requester
from aegis_actors._wire import ok_reply_raw
from bench._load import Run, load, median_run
from bench._report import ratio, table

PARAMS = {"symbol": "ACME", "quantity": 100, "side": "buy"}
BODY = b'{"symbol":"ACME","quantity":100,"side":"buy"}'
PLAN = ((1, 3_000), (10, 15_000), (100, 30_000))  # (in flight, requests)
ROUNDS = 3
LOOKUPS = 1_000_000
PROPAGATIONS = 300
FAILOVERS = 5


class Echo(ServiceActor):
    service_name = "bench-echo"

    @rpc
    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return params


def record(service: str, instance_id: str) -> bytes:
    return (
        ServiceInstance(
            service_name=service,
            instance_id=instance_id,
            version="1.0.0",
            status=InstanceStatus.ACTIVE,
            last_heartbeat=utc_now(),
        )
        .model_dump_json(exclude_none=True)
        .encode()
    )


# -- responders (child processes) ----------------------------------------------------------


async def serve_bare(url: str, namespace: str) -> None:
    """Answer `{ns}.aegis.inst.bench-bare.{instanceId}.*` with the aegis envelope."""
    client = await nats.connect(url)
    instance_id = "bench-bare-00000000"

    async def respond(msg: Msg) -> None:
        await client.publish(msg.reply, ok_reply_raw(msg.data))

    await client.subscribe(Subjects(namespace).instance_all(instance_id), cb=respond)
    bucket = await KVBucket.ensure(client.jetstream(), registry_bucket_spec(Buckets(namespace)))
    await bucket.put(instance_key("bench-bare", instance_id), record("bench-bare", instance_id))
    await client.flush()
    print(instance_id, flush=True)
    await anyio.sleep_forever()


async def serve_aegis(url: str, namespace: str) -> None:
    settings = InstanceSettings(
        nats=ConnectionSettings(url=url),
        namespace=namespace,
        heartbeat=HeartbeatSettings(ttl=2, interval=0.5),
        discovery=DiscoverySettings(mode="off"),
    )
    async with ActorSystem() as system:
        running = await start_instance(system, Echo, settings)
        print(running.instance_id, flush=True)
        await anyio.sleep_forever()


def responder(
    kind: str, url: str, namespace: str, uvloop: bool
) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.discovery", "serve", kind, url, namespace,
         "uvloop" if uvloop else "asyncio"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().strip().decode()
    if not line:
        raise RuntimeError(f"{kind} responder did not start")
    return process, line


def end(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


# -- lookups ---------------------------------------------------------------------------------


async def lookups(url: str, namespace: str, count: int) -> list[object]:
    service = f"look-{count}"
    nc = await nats.connect(url)
    bucket = await KVBucket.ensure(nc.jetstream(), registry_bucket_spec(Buckets(namespace)))
    for n in range(count):
        instance_id = f"{service}-{n:08x}"
        await bucket.put(instance_key(service, instance_id), record(service, instance_id))
    async with Client(url=url, namespace=namespace) as client:
        await client.wait_for_instances(service, count)
        cache = client.cache
        assert cache is not None
        pick = RoundRobin()
        started = time.perf_counter()
        for _ in range(LOOKUPS):
            view = cache.lookup(service)
            assert view is not None
            pick.pick(view.ids, None)
        aegis = LOOKUPS / (time.perf_counter() - started)
        bare_map = {service: tuple(f"{n}" for n in range(count))}
        started = time.perf_counter()
        for turn in range(LOOKUPS):
            ids = bare_map.get(service)
            assert ids is not None
            ids[turn % len(ids)]
        bare = LOOKUPS / (time.perf_counter() - started)
    await nc.close()
    return [loop_name(), f"lookup + pick, {count:,} instances (/s)", aegis,
            "dict get + tuple index", bare, ratio(aegis, bare), "microseconds"]  # fmt: skip


# -- propagation -----------------------------------------------------------------------------


async def propagation(url: str, namespace: str) -> list[list[object]]:
    """Interleaved phases: writes seen by a Client's cache, then by a bare nats-py watcher.

    Each instance is registered (a put), then deregistered (a delete, as a graceful
    stop does), one at a time.
    """
    service = "prop"
    nc = await nats.connect(url)
    bucket = await KVBucket.ensure(nc.jetstream(), registry_bucket_spec(Buckets(namespace)))
    kv = await nc.jetstream().key_value(Buckets(namespace).registry)
    times: dict[tuple[str, str], list[float]] = {}
    written = 0

    async def register() -> str:
        nonlocal written
        written += 1
        instance_id = f"{service}-{written:08x}"
        await bucket.put(instance_key(service, instance_id), record(service, instance_id))
        return instance_id

    def timed(kind: str, what: str, started: float) -> None:
        times.setdefault((kind, what), []).append(time.perf_counter() - started)

    for _ in range(ROUNDS):
        async with Client(url=url, namespace=namespace) as client:
            cache = client.cache
            assert cache is not None
            for _ in range(PROPAGATIONS // ROUNDS):
                started = time.perf_counter()
                instance_id = await register()
                await cache.wait_for(lambda s, i=instance_id: _has(s, service, i), timeout=5)
                timed("aegis", "registration", started)
                started = time.perf_counter()
                await bucket.delete(instance_key(service, instance_id))
                await cache.wait_for(lambda s, i=instance_id: not _has(s, service, i), timeout=5)
                timed("aegis", "deregistration", started)
            stats = client.statistics()
            assert stats.discovery is not None
            assert stats.discovery.loads == 0  # every change came through the watch
        watcher = await kv.watch(f"service-instances.{service}.*")
        while await watcher.updates(timeout=5) is not None:
            pass  # the replay of what is there, up to its end-of-replay marker
        for _ in range(PROPAGATIONS // ROUNDS):
            started = time.perf_counter()
            instance_id = await register()
            # Skip what the replay still owes: nats-py's end-of-replay marker
            # can come before the last replayed entries (nats.py #842).
            while not (
                (entry := await watcher.updates(timeout=5)) and entry.key.endswith(instance_id)
            ):
                pass
            timed("bare", "registration", started)
            started = time.perf_counter()
            await bucket.delete(instance_key(service, instance_id))
            while not ((entry := await watcher.updates(timeout=5)) and entry.operation == "DEL"):
                pass
            timed("bare", "deregistration", started)
        await watcher.stop()
    await nc.close()
    return _propagation_rows(times)


def _has(snapshot: Any, service: str, instance_id: str) -> bool:
    view = snapshot.get(service)
    return view is not None and instance_id in view.members


def _propagation_rows(times: dict[tuple[str, str], list[float]]) -> list[list[object]]:
    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1e6

    rows: list[list[object]] = []
    for what in ("registration", "deregistration"):
        for p in (50, 99):
            aegis, bare = pct(times["aegis", what], p), pct(times["bare", what], p)
            rows.append([loop_name(), f"{what} -> cache p{p} (us)", aegis,
                         "nats-py watcher", bare, f"{aegis / bare:.2f}x", "< 100,000"])  # fmt: skip
    return rows


# -- calls -----------------------------------------------------------------------------------


async def calls(url: str, namespace: str, service: str, instance_id: str) -> dict[Any, list[Run]]:
    """Interleaved rounds of nc.request() and call() against one instance."""
    nc = await nats.connect(url)
    subject = Subjects(namespace).instance(instance_id, "echo")
    runs: dict[Any, list[Run]] = {}
    async with Client(url=url, namespace=namespace) as client:
        await client.wait_for_instances(service)

        requester = Requester(nc)
        await requester.start()

        async def bare() -> None:
            await nc.request(subject, BODY, timeout=5)

        async def shared() -> None:
            await requester.request(subject, BODY, timeout=5)

        async def aegis() -> None:
            await client.call(service, "echo", PARAMS)

        senders = (("bare", bare), ("shared", shared), ("aegis", aegis))
        for _, send in senders:  # warm-up
            await load(send, 2_000, 10)
        for _ in range(ROUNDS):
            for in_flight, requests in PLAN:
                for kind, send in senders:
                    runs.setdefault((kind, in_flight), []).append(
                        await load(send, requests, in_flight)
                    )
        assert client.statistics().failed == 0
    await nc.close()
    return runs


def call_rows(url: str, kind: str, uvloop: bool) -> list[list[object]]:
    namespace = f"{kind}{'uv' if uvloop else 'aio'}"
    process, instance_id = responder(kind, url, namespace, uvloop)
    service = "bench-bare" if kind == "bare" else Echo.service_name
    try:
        runs = run(lambda: calls(url, namespace, service, instance_id), use_uvloop=uvloop)
    finally:
        end(process)
    rows: list[list[object]] = []
    for in_flight, _ in PLAN:
        bare, shared, aegis = (median_run(runs[k, in_flight]) for k in ("bare", "shared", "aegis"))
        rows.append([
            "uvloop" if uvloop else "asyncio", "nats-py echo" if kind == "bare" else "ServiceActor",
            in_flight, aegis.rate, bare.rate, f"{aegis.rate / bare.rate:.2f}x",
            aegis.p50, bare.p50, f"{aegis.p50 / bare.p50:.2f}x", aegis.p99, bare.p99,
            shared.rate, f"{shared.rate / bare.rate:.2f}x",
            aegis.cpu_us, bare.cpu_us, shared.cpu_us,
        ])  # fmt: skip
    return rows


# -- failover --------------------------------------------------------------------------------


async def failover(url: str, namespace: str, uvloop: bool) -> list[list[object]]:
    """A sticky caller's instance is SIGKILLed: how long until a call succeeds again?

    Two cases: the caller is idle at the kill (its next call meets "no responders"
    and moves at once), or a call is in flight (its reply never comes: it waits
    for its attempt timeout, then an idempotent call moves).
    """
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def spawn() -> None:
        process, instance_id = responder("aegis", url, namespace, uvloop)
        processes[instance_id] = process

    idle: list[float] = []
    busy: list[float] = []
    settings = DiscoverySettings(strategies={Echo.service_name: "sticky"})
    try:
        for _ in range(2):
            await anyio.to_thread.run_sync(spawn)
        async with Client(url=url, namespace=namespace, discovery=settings) as client:
            for n in range(2 * FAILOVERS):
                await client.wait_for_instances(Echo.service_name, 2)
                if n % 2:
                    busy.append(await _kill_while_calling(client, processes))
                else:
                    idle.append(await _kill_then_call(client, processes))
                await anyio.to_thread.run_sync(spawn)
    finally:
        for process in processes.values():
            end(process)
    return [
        [loop_name(), "caller idle at the kill", statistics.median(idle) * 1e3,
         max(idle) * 1e3, FAILOVERS, "no responders: at once"],
        [loop_name(), "call in flight at the kill", statistics.median(busy) * 1e3,
         max(busy) * 1e3, FAILOVERS, f"attempt timeout {BUSY_TIMEOUT / 2 * 1e3:.0f} ms"],
    ]  # fmt: skip


BUSY_TIMEOUT = 0.5  # an idempotent call: its first attempt may take half


async def _called(client: Client, processes: dict[str, subprocess.Popen[bytes]]) -> str:
    """The instance the sticky caller is on."""
    before = {i: s.calls for i, s in client.statistics().instances.items()}
    await client.call(Echo.service_name, "echo", PARAMS)
    after = client.statistics().instances
    (current,) = [i for i, s in after.items() if s.calls > before.get(i, 0)]
    assert current in processes
    return current


async def _kill_then_call(client: Client, processes: dict[str, subprocess.Popen[bytes]]) -> float:
    victim = processes.pop(await _called(client, processes))
    killed_at = time.perf_counter()
    victim.kill()
    await anyio.to_thread.run_sync(victim.wait)  # dead: its connection is closed
    await client.call(Echo.service_name, "echo", PARAMS)
    gap = time.perf_counter() - killed_at
    end(victim)
    return gap


async def _kill_while_calling(
    client: Client, processes: dict[str, subprocess.Popen[bytes]]
) -> float:
    victim = processes.pop(await _called(client, processes))
    successes: list[float] = []
    warm, back = anyio.Event(), anyio.Event()
    killed_at = float("inf")

    async def call_on() -> None:
        while True:
            await client.call(
                Echo.service_name, "echo", PARAMS, timeout=BUSY_TIMEOUT, idempotent=True
            )
            successes.append(time.perf_counter())
            if len(successes) == 50:
                warm.set()
            if successes[-1] > killed_at:
                back.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call_on)
        await warm.wait()
        killed_at = time.perf_counter()
        victim.kill()
        await back.wait()
        tg.cancel_scope.cancel()
    await anyio.to_thread.run_sync(end, victim)
    return min(t for t in successes if t > killed_at) - killed_at


def cache_rows(url: str, uvloop: bool) -> list[list[object]]:
    tag = "uv" if uvloop else "aio"

    async def measure() -> list[list[object]]:
        rows = [await lookups(url, f"look{tag}", count) for count in (10, 1_000)]
        return rows + await propagation(url, f"prop{tag}")

    return run(measure, use_uvloop=uvloop)


def main() -> None:
    loops = [False, True] if uvloop_available() else [False]
    cache: list[list[object]] = []
    call_table: list[list[object]] = []
    failovers: list[list[object]] = []
    with NatsServer() as server:
        for uvloop in loops:
            cache += cache_rows(server.url, uvloop)
            call_table += call_rows(server.url, "bare", uvloop)
        for uvloop in loops:
            call_table += call_rows(server.url, "aegis", uvloop)
            tag = "uv" if uvloop else "aio"
            failovers += run(
                lambda t=tag, u=uvloop: failover(server.url, f"fail{t}", u), use_uvloop=uvloop
            )
    table(
        "discovery cache: lookups and propagation (same run)",
        ["loop", "measure", "aegis", "ceiling", "ceiling value", "ratio", "goal"],
        cache,
    )
    table(
        f"call() through discovery vs nc.request() to the same instance (median of {ROUNDS} "
        "interleaved rounds; responder in its own process)",
        ["loop", "responder", "in flight", "call req/s", "request req/s", "x", "call p50 us",
         "request p50 us", "p50 x", "call p99 us", "request p99 us", "Requester req/s",
         "Requester x", "call cpu us", "request cpu us", "Requester cpu us"],
        call_table,
    )  # fmt: skip
    table(
        "failover: SIGKILL of the instance a sticky caller uses, until a call succeeds again",
        ["loop", "case", "p50 ms", "max ms", "kills", "bound"],
        failovers,
    )
    print("goal: call at 100 in flight >= 1.5x request (nats-py echo), p50 x <= 1.1")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        configure_logging(LogFormat.JSON, "warning")
        serve = serve_bare if sys.argv[2] == "bare" else serve_aegis
        run(lambda: serve(sys.argv[3], sys.argv[4]), use_uvloop=sys.argv[5] == "uvloop")
    else:
        main()
