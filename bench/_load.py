"""A load generator shared by the benchmarks: fast requests and latency percentiles.

It uses one wildcard reply subscription with a future per request (no
`asyncio.wait_for` per request), so that the client is not what limits a run.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg


class Requester:
    """Request-reply over one shared inbox subscription."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.prefix = client.new_inbox()
        self.pending: dict[str, asyncio.Future[Msg]] = {}
        self.tokens = itertools.count()

    async def start(self) -> Requester:
        await self.client.subscribe(self.prefix + ".*", cb=self._on_reply)
        return self

    async def _on_reply(self, msg: Msg) -> None:
        future = self.pending.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def request(self, subject: str, data: bytes, timeout: float = 5.0) -> Msg:
        inbox = f"{self.prefix}.{next(self.tokens)}"
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self.pending[inbox] = future
        await self.client.publish(subject, data, reply=inbox)
        handle = asyncio.get_running_loop().call_later(timeout, future.cancel)
        try:
            return await future
        finally:
            handle.cancel()
            self.pending.pop(inbox, None)


@dataclass(frozen=True)
class Run:
    """The outcome of one load run."""

    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """Latency in microseconds at percentile `p` (0-100)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1e6

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1e6

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def load(send: object, requests: int, in_flight: int) -> Run:
    """Run `requests` calls of `send()` with `in_flight` workers; time each one."""
    assert callable(send)
    latencies: list[float] = []
    per_worker = requests // in_flight

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return Run(per_worker * in_flight, time.perf_counter() - started, latencies)


def median_run(runs: list[Run]) -> Run:
    """The run with the median rate (its latencies come with it)."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
