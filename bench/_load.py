"""A load generator shared by the benchmarks: fast requests and latency percentiles.

Benchmarks send with `aegis_actors.Requester` (one wildcard reply subscription,
a future per request, no `asyncio.wait_for`), so that the client is not what
limits a run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """The outcome of one load run."""

    requests: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float = 0.0
    """CPU time of this (the client's) process over the run."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Client CPU per request in microseconds: its own cost, whatever limits the rate."""
        return self.cpu_seconds / self.requests * 1e6

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

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return Run(
        per_worker * in_flight,
        time.perf_counter() - started,
        latencies,
        time.process_time() - cpu,
    )


def median_run(runs: list[Run]) -> Run:
    """The run with the median rate (its latencies come with it)."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
