"""What telemetry is switched on in this process, read by the hot paths (one attribute each).

`TELEMETRY.metrics` is True once `/metrics` is served (`enable_metrics`):
then requests and calls observe their latency. `TELEMETRY.tracing` is the
OpenTelemetry adapter once spans are switched on (`enable_tracing`), None
otherwise: then nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis_actors._telemetry.otel import Tracing


class Telemetry:
    """The process-wide switches (one instance: `TELEMETRY`)."""

    __slots__ = ("metrics", "tracing")

    def __init__(self) -> None:
        self.metrics = False
        self.tracing: Tracing | None = None


TELEMETRY = Telemetry()
