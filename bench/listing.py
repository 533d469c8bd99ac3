"""Lists under writes: 8 clients listing beside 100 writes/s, 0 duplicates, 0 errors.

Against an embedded nats-server, with `aegis-mgmt` in a process of its own
(`aegis run`), 20 registered instances in another, the clients in this one.
Each of `--clients` connections lists in a loop, every page followed to the
end (`limit` 100): `services.list`, `apps.list`, `configs.list` (all, and
of one application) and `instances.list`, while a writer updates
definitions, applications and configurations and creates and
deletes configurations at `--writes` per second (the instances heartbeat
too). A list is wrong if it names a key twice; an error is any error reply
or timeout. The ceiling beside each verb's latency: one direct get of one
key, measured in the same run. The peak number of consumers on the buckets
is sampled throughout on the definitions and configuration buckets (the
registry's consumers are the instances' own watches, not lists).

`--mgmt-from CHECKOUT` runs `aegis-mgmt` from another checkout (with its
`.venv`), for before/after figures on the same machine.
Run: `python -m bench.listing [--duration 60] [--mgmt-from ../main]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
from nats.aio.client import Client

from aegis_actors import (
    ConnectionSettings,
    KVBucket,
    LogFormat,
    NatsServer,
    ServiceActor,
    Subjects,
    configure_logging,
    connect,
    run,
)
from aegis_actors._buckets import Buckets
from bench._report import table

APPS: Final = 100
CONFIGS_PER_APP: Final = 3
DEFINITIONS: Final = 150
INSTANCES: Final = 20
PAGE: Final = 100
#: The verbs listed, and the field that names an item once.
LISTS: Final[list[tuple[str, dict[str, str | None], str]]] = [
    ("services", {}, "serviceName"),
    ("apps", {}, "id"),
    ("configs", {}, "id"),
    ("configs", {"applicationId": None}, "id"),  # of one application (filled in)
    ("instances", {}, "instanceId"),
]


class Idle(ServiceActor):
    """A registered instance that only heartbeats."""

    service_name = "idle"
    version = "1.0.0"


@dataclass
class Verb:
    lists: int = 0
    duplicates: int = 0
    errors: int = 0
    items: int = 0
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


@dataclass
class Tally:
    verbs: dict[str, Verb] = field(default_factory=dict)
    gets: Verb = field(default_factory=Verb)
    writes: int = 0
    write_errors: int = 0
    peak_consumers: int = 0


async def ask(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = json.loads((await nc.request(subject, json.dumps(body).encode(), timeout=10)).data)
    assert isinstance(reply, dict)
    return reply


async def list_all(nc: Client, subject: str, params: dict[str, Any], ident: str) -> list[str]:
    """Every page of one list; the ids it named (raises on an error reply)."""
    names: list[str] = []
    cursor = None
    while True:
        body = {**params, "limit": PAGE} if ident != "instanceId" else dict(params)
        if cursor is not None:
            body["cursor"] = cursor
        reply = await ask(nc, subject, body)
        if not reply["ok"]:
            raise RuntimeError(f"{subject}: {reply['error']}")
        names += [item[ident] for item in reply["data"]["items"]]
        cursor = reply["data"].get("nextCursor")
        if cursor is None:
            return names


async def lister(nc: Client, subjects: Subjects, app_id: str, tally: Tally, until: float) -> None:
    for resource, params, ident in itertools.cycle(LISTS):
        if time.monotonic() >= until:
            return
        body: dict[str, Any] = {k: app_id if v is None else v for k, v in params.items()}
        name = f"{resource}.list" + (" (one app)" if body else "")
        verb = tally.verbs.setdefault(name, Verb())
        start = time.perf_counter()
        try:
            names = await list_all(nc, subjects.mgmt(resource, "list"), body, ident)
        except Exception as exc:
            verb.errors += 1
            print(f"  error: {name}: {exc!r}"[:300])
            continue
        verb.latencies.append(time.perf_counter() - start)
        verb.lists += 1
        verb.items += len(names)
        verb.duplicates += len(names) != len(set(names))


async def writer(
    nc: Client, subjects: Subjects, state: dict[str, Any], rate: float, tally: Tally, until: float
) -> None:
    """`rate` writes per second through the API, each started on time whatever the others do
    (an offered load): updates, and configuration creates and deletes."""

    async def one(n: int) -> None:
        try:
            for _ in range(5):  # a writer that lost a race reads again, as clients do
                if await write_one(nc, subjects, state, n):
                    break
            tally.writes += 1
        except Exception as exc:
            tally.write_errors += 1
            print(f"  write error: {exc!r}"[:300])

    step = 1.0 / rate
    next_at = time.monotonic()
    async with anyio.create_task_group() as tg:
        for n in itertools.count():
            if time.monotonic() >= until:
                return
            tg.start_soon(one, n)
            next_at += step
            await anyio.sleep(max(0.0, next_at - time.monotonic()))


async def write_one(nc: Client, subjects: Subjects, state: dict[str, Any], n: int) -> bool:
    """One write; False if another write came first (409: read again and retry)."""
    kind = n % 5
    if kind == 0:
        name = f"svc-{n % DEFINITIONS:04d}"
        got = await ask(nc, subjects.mgmt("services", "get"), {"serviceName": name})
        body = {"serviceName": name, "revision": got["revision"], "description": f"w{n}"}
        reply = await ask(nc, subjects.mgmt("services", "update"), body)
    elif kind == 1:
        app = state["apps"][n % len(state["apps"])]
        got = await ask(nc, subjects.mgmt("apps", "get"), {"id": app})
        body = {"id": app, "revision": got["revision"], "comments": f"w{n}"}
        reply = await ask(nc, subjects.mgmt("apps", "update"), body)
    elif kind in (2, 3):
        config = state["configs"][n % len(state["configs"])]
        got = await ask(nc, subjects.mgmt("configs", "get"), {"id": config})
        body = {"id": config, "revision": got["revision"], "config": {"n": n}}
        reply = await ask(nc, subjects.mgmt("configs", "update"), body)
    else:  # a configuration made, and one made earlier deleted
        app = state["apps"][n % len(state["apps"])]
        body = {"applicationId": app, "name": f"tmp-{n}", "config": {}}
        reply = await ask(nc, subjects.mgmt("configs", "create"), body)
        state["temporary"].append(reply["data"]["id"])
        if len(state["temporary"]) > 20:
            old = state["temporary"].pop(0)
            reply = await ask(nc, subjects.mgmt("configs", "delete"), {"id": old})
    if not reply["ok"]:
        if reply["error"]["code"] == "REVISION_CONFLICT":
            return False
        raise RuntimeError(reply["error"])
    return True


async def getter(bucket: KVBucket, key: str, tally: Tally, until: float) -> None:
    """The ceiling: one direct get of one key, a few times a second."""
    while time.monotonic() < until:
        start = time.perf_counter()
        await bucket.get(key)
        tally.gets.latencies.append(time.perf_counter() - start)
        tally.gets.lists += 1
        await anyio.sleep(0.02)


async def sampler(nc: Client, buckets: list[str], tally: Tally, until: float) -> None:
    js = nc.jetstream()
    while time.monotonic() < until:
        count = 0
        for name in buckets:
            count += (await js.stream_info(f"KV_{name}")).state.consumer_count
        tally.peak_consumers = max(tally.peak_consumers, count)
        await anyio.sleep(0.1)


async def seed(nc: Client, subjects: Subjects) -> dict[str, Any]:
    state: dict[str, Any] = {"apps": [], "configs": [], "temporary": []}
    for i in range(DEFINITIONS):
        body = {"serviceName": f"svc-{i:04d}", "owner": "bench", "version": "1.0.0"}
        await ask(nc, subjects.mgmt("services", "create"), body)
    for i in range(APPS):
        app = await ask(nc, subjects.mgmt("apps", "create"), {"name": f"app-{i:04d}"})
        state["apps"].append(app["data"]["id"])
        for j in range(CONFIGS_PER_APP):
            made = {"applicationId": app["data"]["id"], "name": f"c{j}", "config": {"j": j}}
            config = await ask(nc, subjects.mgmt("configs", "create"), made)
            state["configs"].append(config["data"]["id"])
    return state


MGMT: Final = """
name = "mgmt"
namespace = "{namespace}"
[nats]
url = "{url}"
[[services]]
class = "aegis_actors:ManagementService"
instances = 1
"""
IDLE: Final = """
name = "idle"
namespace = "{namespace}"
[nats]
url = "{url}"
[[services]]
class = "bench.listing:Idle"
instances = {instances}
[services.heartbeat]
ttl = 3
interval = 1
"""


HERE: Final = Path(__file__).resolve().parent.parent


@contextmanager
def fleet(url: str, namespace: str, mgmt_from: Path) -> Iterator[None]:
    """`aegis-mgmt` in a process of its own, as it would run (from the checkout `mgmt_from`,
    with its `.venv`); the idle instances in another."""
    with tempfile.TemporaryDirectory() as tmp:
        processes = []
        try:
            for name, text, root in (("mgmt", MGMT, mgmt_from), ("idle", IDLE, HERE)):
                config = Path(tmp) / f"{name}.toml"
                config.write_text(text.format(namespace=namespace, url=url, instances=INSTANCES))
                python = root / ".venv" / "bin" / "python"
                command = [str(python), "-m", "aegis_actors", "--log-level", "warning", "run"]
                processes.append(
                    subprocess.Popen([*command, str(config)], cwd=root, stdout=subprocess.DEVNULL)
                )
            yield
        finally:
            for process in processes:
                process.send_signal(signal.SIGINT)
            for process in processes:
                process.wait(timeout=30)


async def ready(nc: Client, subjects: Subjects) -> None:
    with anyio.fail_after(30):
        while True:
            try:
                reply = await ask(nc, subjects.mgmt("instances", "list"), {})
                if reply["ok"] and len(reply["data"]["items"]) >= INSTANCES + 1:
                    return
            except Exception:  # not up yet
                pass
            await anyio.sleep(0.2)


async def measure(mgmt_from: Path, duration: float, clients: int, rate: float) -> Tally:
    tally = Tally()
    namespace = "blist"
    subjects = Subjects(namespace)
    buckets = Buckets(namespace)
    with NatsServer() as server, fleet(server.url, namespace, mgmt_from):
        settings = ConnectionSettings(url=server.url)
        connections = [await connect(settings) for _ in range(clients + 2)]
        control, write_nc, *listers = connections
        await ready(control, subjects)
        state = await seed(control, subjects)
        probe = KVBucket(control.jetstream(), buckets.definitions)
        until = time.monotonic() + duration
        async with anyio.create_task_group() as tg:
            for nc in listers:
                tg.start_soon(lister, nc, subjects, state["apps"][0], tally, until)
            tg.start_soon(writer, write_nc, subjects, state, rate, tally, until)
            tg.start_soon(getter, probe, "svc-0000", tally, until)
            names = [buckets.definitions, buckets.configuration]
            tg.start_soon(sampler, control, names, tally, until)
        for nc in connections:
            await nc.close()
    return tally


def report(label: str, tally: Tally, duration: float, clients: int) -> None:
    rows: list[list[object]] = [
        [
            name,
            verb.lists,
            verb.items // max(verb.lists, 1),
            verb.p(0.5),
            verb.p(0.99),
            verb.duplicates,
            verb.errors,
        ]
        for name, verb in tally.verbs.items()
    ]
    gets = tally.gets
    rows.append(["ceiling: one direct get", gets.lists, 1, gets.p(0.5), gets.p(0.99), 0, 0])
    table(
        f"aegis-mgmt of {label}: {clients} clients listing for {duration:.0f} s beside "
        f"{tally.writes / duration:.0f} writes/s ({tally.write_errors} write errors); "
        f"peak consumers on the buckets: {tally.peak_consumers}",
        ["list (every page)", "lists", "items", "p50 ms", "p99 ms", "duplicates", "errors"],
        rows,
    )
    wrong = sum(v.duplicates + v.errors for v in tally.verbs.values())
    print(f"  goal (0 duplicates, 0 errors): {'met' if wrong == 0 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.listing", description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds (the goal: 60)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--writes", type=float, default=100.0, help="writes per second")
    parser.add_argument(
        "--mgmt-from",
        type=Path,
        default=HERE,
        metavar="CHECKOUT",
        help="run aegis-mgmt from this checkout and its .venv (e.g. an older one: before/after)",
    )
    args = parser.parse_args()
    configure_logging(LogFormat.HUMAN, level="warning")

    async def one() -> Tally:
        return await measure(args.mgmt_from, args.duration, args.clients, args.writes)

    label = "this checkout" if args.mgmt_from == HERE else str(args.mgmt_from)
    report(label, run(one), args.duration, args.clients)


if __name__ == "__main__":
    main()
