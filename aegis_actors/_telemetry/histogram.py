"""`LatencyHistogram`: the request path's latency buckets, kept as plain ints.

A request adds one to one bucket (a bisect over 16 bounds) and its time to
the sum: no lock (everything runs on the event loop) and no
prometheus-client call on the hot path. The collector turns the counts
into a cumulative Prometheus histogram when `/metrics` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

#: Seconds. Calls inside one data centre take 0.1-5 ms, so the low end is fine
#: grained; OpenTelemetry's messaging buckets (5 ms-10 s) are the upper end.
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BOUNDS_NS: Final = tuple(round(b * 1e9) for b in LATENCY_BUCKETS)


class LatencyHistogram:
    """Counts of durations per bucket (the last one: over the largest bound), and their sum."""

    __slots__ = ("counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS_NS) + 1)
        self.sum_ns = 0

    def observe_ns(self, elapsed_ns: int) -> None:
        self.counts[bisect_left(_BOUNDS_NS, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns

    def merge(self, other: LatencyHistogram) -> None:
        """Add `other`'s counts and sum to these."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum_ns += other.sum_ns

    def cumulative(self) -> list[tuple[str, float]]:
        """`(le, count)` pairs as Prometheus wants them, `+Inf` last."""
        buckets = []
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return buckets

    @property
    def count(self) -> int:
        return sum(self.counts)
