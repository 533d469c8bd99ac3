"""Actor core throughput: tell and ask, beside a bare asyncio.Queue pair and a bare future.

The ceilings do the least work that moves a message between two tasks:
  tell ceiling: producer `await queue.put(x)` / consumer `await queue.get()`, same capacity;
  ask ceiling:  put a future in a queue, a consumer task sets its result, await it.
Goals (issue 2): tell >= 50% of the bare queue, ask >= 50% of the bare future round trip.
Run: `python bench/actors.py` (prints asyncio and, when installed, uvloop).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import anyio

from aegis_actors import Actor, ActorSystem, run
from aegis_actors._eventloop import loop_name, uvloop_available
from bench._report import ratio, table

TELLS = 200_000
ASKS = 50_000
CAPACITY = 1000
ROUNDS = 5


class Sink(Actor):
    def __init__(self, expected: int, done: anyio.Event) -> None:
        self.seen = 0
        self.expected = expected
        self.done = done

    async def on_receive(self, message: Any) -> Any:
        self.seen += 1
        if self.seen == self.expected:
            self.done.set()
        return message


async def bare_queue_pair(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue(CAPACITY)

    async def consume() -> None:
        for _ in range(n):
            await queue.get()

    consumer = asyncio.ensure_future(consume())
    start = time.perf_counter()
    for i in range(n):
        await queue.put(i)
    await consumer
    return n / (time.perf_counter() - start)


async def actor_tell(n: int) -> float:
    done = anyio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Sink(n, done), name="sink", capacity=CAPACITY)
        start = time.perf_counter()
        for i in range(n):
            await ref.tell(i)
        await done.wait()
        return n / (time.perf_counter() - start)


async def bare_future_round_trip(n: int) -> float:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue(CAPACITY)

    async def serve() -> None:
        while True:
            value, future = await queue.get()
            future.set_result(value)

    server = asyncio.ensure_future(serve())
    start = time.perf_counter()
    for i in range(n):
        future: asyncio.Future[int] = loop.create_future()
        queue.put_nowait((i, future))
        await future
    rate = n / (time.perf_counter() - start)
    server.cancel()
    return rate


async def actor_ask(n: int) -> float:
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Sink(-1, anyio.Event()), name="sink", capacity=CAPACITY)
        start = time.perf_counter()
        for i in range(n):
            await ref.ask(i)
        return n / (time.perf_counter() - start)


async def measure() -> list[list[object]]:
    results: dict[str, list[float]] = {k: [] for k in ("queue", "tell", "future", "ask")}
    for _ in range(ROUNDS):  # interleaved, so drift on a busy machine hits both sides
        results["queue"].append(await bare_queue_pair(TELLS))
        results["tell"].append(await actor_tell(TELLS))
        results["future"].append(await bare_future_round_trip(ASKS))
        results["ask"].append(await actor_ask(ASKS))
    med = {k: statistics.median(v) for k, v in results.items()}
    loop = loop_name()
    return [
        [loop, "tell (msgs/s)", med["tell"], "bare asyncio.Queue pair", med["queue"],
         ratio(med["tell"], med["queue"]), ">= 50%"],
        [loop, "ask (round trips/s)", med["ask"], "bare future round trip", med["future"],
         ratio(med["ask"], med["future"]), ">= 50%"],
    ]  # fmt: skip


def main() -> None:
    rows = run(measure, use_uvloop=False)
    if uvloop_available():
        rows += run(measure, use_uvloop=True)
    table(
        f"actor core, median of {ROUNDS} rounds ({TELLS:,} tells, {ASKS:,} asks per round)",
        ["loop", "operation", "aegis", "ceiling", "ceiling value", "ratio", "goal"],
        rows,
    )


if __name__ == "__main__":
    main()
