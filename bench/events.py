"""Events into handlers: aegis `@event` vs bare nats-py, core and durable, same run.

Each consumer runs in its own process and handles a backlog of the same events:

- core: a subscriber's first message blocks its callback until the backlog of
  N events is published and waiting in the client, then it is released and the
  time to handle all N is measured (the publisher's speed is not measured);
- durable: N events are stored in a stream first, then a consumer (deliver
  all) handles them; bare = nats-py `pull_subscribe` + `fetch(100)` + `ack()`
  per message, aegis = `@event(durable=True)` (acked after the handler).

Both decode the JSON body (aegis validates it into the handler's type).
Goals (issue 15): durable >= 70% of bare; core >= 50k/s and >= 70% of bare.
Run: `python -m bench.events` (asyncio, then uvloop on both sides when installed).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from typing import Any

import anyio
import nats

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    LogFormat,
    NatsServer,
    ServiceActor,
    configure_logging,
    event,
    run,
    start_instance,
)
from aegis_actors._eventloop import uvloop_available
from bench._report import ratio, table

BODY = b'{"symbol": "ACME", "side": "buy", "quantity": 100, "price": 101.25}'
CORE_EVENTS = 50_000  # under the client's pending limit (65,536), so none is dropped
DURABLE_EVENTS = 20_000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GO = "bench.go"
FREEZE = os.environ.get("BENCH_FREEZE") == "1"


class Done:
    """Counts handled events; says when the last one came."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.first = self.last = self.first_cpu = self.last_cpu = 0.0
        self.finished = anyio.Event()

    def tick(self) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
            self.first_cpu = time.process_time()
        self.count += 1
        if self.count == self.total:
            self.last = time.perf_counter()
            self.last_cpu = time.process_time()
            self.finished.set()


DONE: Done
GATE: anyio.Event


class CoreSink(ServiceActor):
    service_name = "bench-core"

    @event("events.bench.*")
    async def on_event(self, payload: dict[str, Any]) -> None:
        if DONE.count == 0 and not GATE.is_set():
            await GATE.wait()
        DONE.tick()


class DurableSink(ServiceActor):
    service_name = "bench-durable"

    @event("events.bench.*", durable=True, deliver="all")
    async def on_event(self, payload: dict[str, Any]) -> None:
        DONE.tick()


# -- the consumers (one process each) ----------------------------------------------------


async def consume(kind: str, mode: str, url: str, namespace: str, total: int) -> Done:
    """Handle `total` events once released; say when the first and the last were handled."""
    global DONE, GATE
    DONE, GATE = Done(total), anyio.Event()
    client = await nats.connect(url)
    go = await client.subscribe(f"{namespace}.{GO}")
    if kind == "bare":
        async with anyio.create_task_group() as tg:
            await (_bare_core if mode == "core" else _bare_durable)(client, namespace, tg)
            await _release(go)
            await DONE.finished.wait()
            tg.cancel_scope.cancel()
    else:
        settings = InstanceSettings(
            nats=ConnectionSettings(url=url), namespace=namespace, registration=False
        )
        async with ActorSystem() as system:
            await start_instance(system, CoreSink if mode == "core" else DurableSink, settings)
            await _release(go)
            await DONE.finished.wait()
    await client.close()
    return DONE


async def _release(go: Any) -> None:
    print("ready", flush=True)
    await go.next_msg(timeout=120)
    if FREEZE:
        gc.collect()
        gc.freeze()
    GATE.set()


async def _bare_core(client: Any, namespace: str, tg: Any) -> None:
    async def on_message(msg: Any) -> None:
        json.loads(msg.data)
        if DONE.count == 0 and not GATE.is_set():
            await GATE.wait()
        DONE.tick()

    subject = f"{namespace}.events.bench.tick"
    await client.subscribe(subject, cb=on_message, pending_msgs_limit=CORE_EVENTS * 2)


async def _bare_durable(client: Any, namespace: str, tg: Any) -> None:
    sub = await client.jetstream().pull_subscribe(f"{namespace}.events.bench.*", durable="bare")

    async def pull() -> None:
        await GATE.wait()
        while True:
            for msg in await sub.fetch(100, timeout=5):
                json.loads(msg.data)
                await msg.ack()
                DONE.tick()

    tg.start_soon(pull)


# -- the load (this process) --------------------------------------------------------------


def start(kind: str, mode: str, url: str, namespace: str, total: int, uvloop: bool) -> Any:
    loop = "uvloop" if uvloop else "asyncio"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.events", "consume", kind, mode, url, namespace, str(total),
         loop],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"{kind} {mode} consumer did not start")
    return process


async def core_round(url: str, kind: str, namespace: str, uvloop: bool) -> tuple[float, float]:
    process = start(kind, "core", url, namespace, CORE_EVENTS, uvloop)
    client = await nats.connect(url)
    subject = f"{namespace}.events.bench.tick"
    for _ in range(CORE_EVENTS):
        await client.publish(subject, BODY)
    await client.flush()
    await client.publish(f"{namespace}.{GO}", b"")
    await client.flush()
    await client.close()
    return await _rate(process)


async def durable_round(url: str, kind: str, namespace: str, uvloop: bool) -> tuple[float, float]:
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name=f"{namespace}-events-bench", subjects=[f"{namespace}.events.bench.>"])
    subject = f"{namespace}.events.bench.tick"
    for _ in range(DURABLE_EVENTS - 1):
        await client.publish(subject, BODY)  # stored by the stream, no ack awaited
    # Acknowledged once stored: so are the ones sent before it on this connection.
    await js.publish(subject, BODY)
    process = start(kind, "durable", url, namespace, DURABLE_EVENTS, uvloop)
    await client.publish(f"{namespace}.{GO}", b"")
    await client.flush()
    await client.close()
    return await _rate(process)


async def _rate(process: Any) -> tuple[float, float]:
    """Events per second, and per CPU second of the consumer's process."""
    out, _ = await anyio.to_thread.run_sync(process.communicate)
    wall, cpu = out.decode().split()[-2:]
    return float(wall), float(cpu)


async def measure(url: str, uvloop: bool) -> dict[tuple[str, str], list[tuple[float, float]]]:
    rates: dict[tuple[str, str], list[tuple[float, float]]] = {}
    n = 0
    for _ in range(ROUNDS):
        for mode, one in (("core", core_round), ("durable", durable_round)):
            for kind in ("bare", "aegis"):
                n += 1
                rates.setdefault((mode, kind), []).append(await one(url, kind, f"b{n}", uvloop))
    return rates


def main() -> None:
    rows: list[list[object]] = []
    with NatsServer() as server:
        loops = [False, True] if uvloop_available() else [False]
        for uvloop in loops:
            rates = run(partial(measure, server.url, uvloop), use_uvloop=uvloop)
            for mode in ("core", "durable"):
                aegis = [statistics.median(r) for r in zip(*rates[mode, "aegis"], strict=True)]
                bare = [statistics.median(r) for r in zip(*rates[mode, "bare"], strict=True)]
                rows.append([
                    "uvloop" if uvloop else "asyncio", mode, aegis[0], bare[0],
                    ratio(aegis[0], bare[0]), aegis[1], bare[1], ratio(aegis[1], bare[1]),
                ])  # fmt: skip
    table(
        f"Events into a handler: @event vs bare nats-py (own processes; median of {ROUNDS} "
        f"interleaved rounds of {CORE_EVENTS:,} core / {DURABLE_EVENTS:,} durable events)",
        ["loop", "events", "aegis ev/s", "bare ev/s", "ratio", "aegis ev/cpu-s",
         "bare ev/cpu-s", "cpu ratio"],
        rows,
    )  # fmt: skip
    print(
        "goal: durable ratio >= 70%; core >= 50,000 ev/s and ratio >= 70%\n"
        "(ev/cpu-s: events per CPU second of the consumer's process, steadier than ev/s "
        "on a shared machine)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "consume":
        configure_logging(LogFormat.JSON, "warning")
        _, _, kind, mode, url, namespace, total, loop = sys.argv
        done = run(
            lambda: consume(kind, mode, url, namespace, int(total)), use_uvloop=loop == "uvloop"
        )
        wall = done.total / (done.last - done.first)
        cpu = done.total / (done.last_cpu - done.first_cpu)
        print(f"{wall:.1f} {cpu:.1f}", flush=True)
    else:
        main()
