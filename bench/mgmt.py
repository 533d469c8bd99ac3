"""Management API: create, get, list (100 and 1,000 definitions) and update, 1 and 100 clients.

Against an embedded nats-server, with `aegis-mgmt` and the clients in this
process (one NATS connection each side; "100 clients" = 100 requests in flight).
The ceiling is a bare nats-py responder in the same process doing the same KV
work with no actor, validation or envelope, one task per request:
  create: `KVBucket.create`;  get: `KVBucket.get`;  update: get + revision-checked write;
  list:   the bucket's last revision (what a fresh list must ask) + a reply of the same bytes.
Goal (issue 5): p99 < 5 ms with one client.

Then live configuration (issue 7): from the start of a configuration update
(`ConfigurationStore.update_configuration`: a read and a revision-checked
write) to the bound service's `on_configuration_changed`, beside a bare KV put to a
nats-py watcher receiving it, in the same run, one change at a time.
Run: `python -m bench.mgmt`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio
from nats.aio.client import Client
from nats.aio.msg import Msg

from aegis_actors import (
    ActorSystem,
    ConfigurationBinding,
    ConnectionSettings,
    InstanceSettings,
    KVBucket,
    LogFormat,
    ManagementService,
    NatsServer,
    ServiceActor,
    Subjects,
    configure_logging,
    connect,
    run,
    start_instance,
)
from aegis_actors._buckets import Buckets
from aegis_actors._configuration.store import ConfigurationStore
from aegis_actors._eventloop import loop_name
from aegis_actors._mgmt.definitions import definitions_bucket_spec
from bench._report import ratio, table

ROUNDS: Final = 3
SINGLE: Final = 400  # requests per round with one client
MANY: Final = 3000  # requests per round with 100 clients
CLIENTS: Final = 100
CEILING: Final = "bench.ceiling"


def definition(name: str) -> dict[str, str]:
    return {
        "serviceName": name,
        "owner": "team-bench",
        "version": "1.0.0",
        "description": "A service the benchmark made, about as long as real ones are.",
    }


@dataclass
class Sample:
    ops: float
    p50_ms: float
    p99_ms: float


async def drive(clients: int, total: int, one: Callable[[int], Awaitable[object]]) -> Sample:
    """Run `one(i)` for i in range(total), `clients` at a time; latency of each call."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client() -> None:
        for i in counter:
            start = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(client)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return Sample(
        total / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


async def request(nc: Client, subject: str, body: dict[str, Any]) -> bytes:
    """One request; the reply as received. Parsing it is the client's cost, not the API's:
    only the envelope's start is checked (a 1,000-definition page is 220 KB of JSON)."""
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=10)
    if reply.data.startswith(b'{"ok":false'):
        raise RuntimeError(f"{subject}: {reply.data[:300]!r}")
    return reply.data


async def revision_of(nc: Client, subject: str, body: dict[str, Any]) -> int:
    revision: int = json.loads(await request(nc, subject, body))["revision"]
    return revision


class Ceiling:
    """A bare responder: the same KV work as aegis-mgmt, none of the rest."""

    def __init__(self, nc: Client, bucket: KVBucket) -> None:
        self.nc = nc
        self.bucket = bucket
        self.page = b""

    async def start(self, tg: Any) -> None:
        async def on_request(msg: Msg) -> None:
            tg.start_soon(self.serve, msg)  # concurrent, as aegis-mgmt's methods are

        await self.nc.subscribe(f"{CEILING}.*", cb=on_request)

    async def serve(self, msg: Msg) -> None:
        verb = msg.subject.rpartition(".")[2]
        body = json.loads(msg.data)
        name = body.get("serviceName", "")
        if verb == "create":
            revision = await self.bucket.create(name, msg.data)
            reply = b'{"revision":%d}' % revision
        elif verb == "get":
            entry = await self.bucket.get(name)
            reply = entry.value if entry else b"null"
        elif verb == "update":
            entry = await self.bucket.get(name)
            assert entry is not None
            revision = await self.bucket.update(name, msg.data, revision=entry.revision)
            reply = b'{"revision":%d}' % revision
        else:  # list
            await self.bucket.last_revision()
            reply = self.page
        await self.nc.publish(msg.reply, reply)


async def measure() -> list[list[object]]:
    with NatsServer() as server:
        settings = InstanceSettings(nats=ConnectionSettings(url=server.url), registration=False)
        nc = await connect(ConnectionSettings(url=server.url))
        js = nc.jetstream()
        async with ActorSystem() as system, anyio.create_task_group() as tg:
            namespaces = {"crud": "bcrud", "l100": "bl100", "l1000": "bl1000"}
            for ns in namespaces.values():
                await start_instance(
                    system, ManagementService, settings.model_copy(update={"namespace": ns})
                )
            raw = await KVBucket.ensure(js, definitions_bucket_spec(Buckets("braw")))
            ceiling = Ceiling(nc, raw)
            await ceiling.start(tg)
            rows = await scenarios(nc, namespaces, ceiling)
            tg.cancel_scope.cancel()
        await nc.close()
    return rows


Results = dict[tuple[str, int], tuple[list[Sample], list[Sample]]]


async def scenarios(nc: Client, ns: dict[str, str], ceiling: Ceiling) -> list[list[object]]:
    results: Results = {}
    # The definitions to list, made once (through the API).
    for size, key in ((100, "l100"), (1000, "l1000")):
        await fill(nc, Subjects(ns[key]).mgmt("services", "create"), size)
    for rnd in range(ROUNDS):  # interleaved, so drift on a busy machine hits both sides
        for clients, total in ((1, SINGLE), (CLIENTS, MANY)):
            names = [f"r{rnd}c{clients}-{i:05d}" for i in range(total)]
            await crud_round(nc, Subjects(ns["crud"]), names, clients, results)
            for size, key in ((100, "l100"), (1000, "l1000")):
                count = max(total // (10 if size == 1000 else 2), clients)
                subject = Subjects(ns[key]).mgmt("services", "list")
                await list_round(nc, subject, size, clients, count, ceiling, results)
    return rows_of(results)


async def fill(nc: Client, subject: str, size: int) -> None:
    async def create(i: int) -> None:
        await request(nc, subject, definition(f"svc-{i:04d}"))

    await drive(CLIENTS, size, create)


def record(results: Results, op: str, clients: int, aegis: Sample, bare: Sample) -> None:
    mine, theirs = results.setdefault((op, clients), ([], []))
    mine.append(aegis)
    theirs.append(bare)


async def crud_round(
    nc: Client, subjects: Subjects, names: list[str], clients: int, results: Results
) -> None:
    total = len(names)

    async def create(i: int, subject: str) -> None:
        await request(nc, subject, definition(names[i]))

    async def get(i: int, subject: str) -> None:
        await request(nc, subject, {"serviceName": names[i]})

    aegis = await drive(clients, total, lambda i: create(i, subjects.mgmt("services", "create")))
    bare = await drive(clients, total, lambda i: create(i, f"{CEILING}.create"))
    record(results, "create", clients, aegis, bare)
    aegis = await drive(clients, total, lambda i: get(i, subjects.mgmt("services", "get")))
    bare = await drive(clients, total, lambda i: get(i, f"{CEILING}.get"))
    record(results, "get", clients, aegis, bare)

    # Each client updates its own definition, with the revision its last update
    # returned (no conflicts here: that is the race tests' job).
    get_subject, update_subject = (
        subjects.mgmt("services", "get"),
        subjects.mgmt("services", "update"),
    )
    revisions = {n: await revision_of(nc, get_subject, {"serviceName": n}) for n in names[:clients]}

    async def update(i: int) -> None:
        name = names[i % clients]
        body = {"serviceName": name, "revision": revisions[name], "description": f"u{i}"}
        revisions[name] = await revision_of(nc, update_subject, body)

    async def bare_update(i: int) -> None:
        body = {"serviceName": names[i % clients], "description": f"u{i}"}
        await request(nc, f"{CEILING}.update", body)

    aegis = await drive(clients, total, update)
    bare = await drive(clients, total, bare_update)
    record(results, "update", clients, aegis, bare)


async def list_round(
    nc: Client,
    subject: str,
    size: int,
    clients: int,
    count: int,
    ceiling: Ceiling,
    results: Results,
) -> None:
    params = {"limit": size}
    ceiling.page = await request(nc, subject, params)
    aegis = await drive(clients, count, lambda i: request(nc, subject, params))
    bare = await drive(clients, count, lambda i: request(nc, f"{CEILING}.list", params))
    record(results, f"list {size:,}", clients, aegis, bare)


def rows_of(results: Results) -> list[list[object]]:
    loop = loop_name()
    rows: list[list[object]] = []
    for (op, clients), (mine, theirs) in results.items():
        ops = statistics.median(s.ops for s in mine)
        bare_ops = statistics.median(s.ops for s in theirs)
        p99 = statistics.median(s.p99_ms for s in mine)
        goal = ("p99 < 5 ms: " + ("met" if p99 < 5 else "MISSED")) if clients == 1 else ""
        rows.append([
            loop, op, clients, ops, statistics.median(s.p50_ms for s in mine), p99,
            bare_ops, statistics.median(s.p99_ms for s in theirs), ratio(ops, bare_ops), goal,
        ])  # fmt: skip
    return rows


UPDATES: Final = 300


class _Bound(ServiceActor):
    service_name = "bench-bound"
    configuration_binding = ConfigurationBinding("bench", "live")

    async def on_configuration_changed(self, new: Any, old: Any) -> None:
        arrived: Callable[[int], None] = self.settings["arrived"]
        arrived(int(new["n"]))


async def config_latency() -> list[list[object]]:
    """p50/p99 of update -> callback, and of bare put -> watcher, in milliseconds."""
    with NatsServer() as server:
        nc = await connect(ConnectionSettings(url=server.url))
        js = nc.jetstream()
        store = await ConfigurationStore.open(js, Buckets("blive"))
        app, _ = await store.create_application("bench", "")
        config, revision = await store.create_configuration(app.id, "live", "", {"n": 0})
        waiting: dict[int, anyio.Event] = {}

        def arrived(n: int) -> None:
            if n in waiting:
                waiting[n].set()

        settings = InstanceSettings(
            nats=ConnectionSettings(url=server.url),
            namespace="blive",
            registration=False,
            settings={"arrived": arrived},
        )
        live: list[float] = []
        bare: list[float] = []
        async with ActorSystem() as system:
            await start_instance(system, _Bound, settings)
            for n in range(1, UPDATES + 1):
                waiting[n] = anyio.Event()
                started = time.perf_counter()
                _, revision = await store.update_configuration(
                    config.id, revision, None, None, {"n": n}
                )
                await waiting[n].wait()
                live.append((time.perf_counter() - started) * 1000)
            kv = await js.create_key_value(bucket="bench-bare")
            watcher = await kv.watch("k")
            await kv.put("k", b"0")
            while (entry := await watcher.updates(timeout=5)) is None or entry.value != b"0":
                pass
            for n in range(1, UPDATES + 1):
                started = time.perf_counter()
                await kv.put("k", str(n).encode())
                while (entry := await watcher.updates(timeout=5)) is None or entry.value != str(
                    n
                ).encode():
                    pass
                bare.append((time.perf_counter() - started) * 1000)
            await watcher.stop()
        await nc.close()
    q = statistics.quantiles
    return [
        [loop_name(), "config update -> on_configuration_changed", statistics.median(live),
         q(live, n=100)[98], "bare KV put -> watcher", statistics.median(bare),
         q(bare, n=100)[98], f"{statistics.median(live) / statistics.median(bare):.2f}x"],
    ]  # fmt: skip


def main() -> None:
    configure_logging(LogFormat.HUMAN, "warning")  # the tables, not every config change
    live_rows = run(config_latency)
    rows = run(measure)
    table(
        f"management API over NATS, median of {ROUNDS} rounds "
        f"({SINGLE} requests with 1 client, {MANY} with {CLIENTS}; list: fewer)",
        ["loop", "operation", "clients", "ops/s", "p50 ms", "p99 ms",
         "ceiling ops/s", "ceiling p99 ms", "ratio", "goal"],
        rows,
    )  # fmt: skip
    table(
        f"live configuration, one change at a time ({UPDATES} changes)",
        ["loop", "path", "p50 ms", "p99 ms", "ceiling", "ceiling p50 ms", "ceiling p99 ms",
         "p50 x"],
        live_rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
