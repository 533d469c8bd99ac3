"""`MetricsSettings` (`[metrics]`) and `TracingSettings` (`[tracing]`) of a fleet file.

Plain pydantic: a file with these sections is validated even where the
`metrics` or `otel` extra is not installed (`aegis run` then says which).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

#: OpenTelemetry's Prometheus exporter uses it too.
DEFAULT_METRICS_PORT: Final = 9464


class MetricsSettings(BaseModel):
    """Section `[metrics]`: serve Prometheus metrics on `http://{host}:{port}/metrics`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description='Address to listen on; loopback by default: "0.0.0.0" for a Prometheus '
        "on another machine.",
    )
    port: int = Field(
        DEFAULT_METRICS_PORT, ge=0, le=65535, description="HTTP port; 0 picks a free one."
    )


class TracingSettings(BaseModel):
    """Section `[tracing]`: OpenTelemetry spans for calls, handlers and events (`otel` extra)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exporter: Literal["otlp", "console", "none"] = Field(
        "otlp",
        description="Where spans go: `otlp` (an OpenTelemetry collector, over HTTP; needs "
        "opentelemetry-exporter-otlp-proto-http; OTEL_EXPORTER_OTLP_* variables apply), "
        "`console` (stdout), `none` (made and dropped: to measure the cost).",
    )
    endpoint: str | None = Field(
        None,
        description="The collector's traces URL for `otlp` (default: the exporter's, "
        "http://localhost:4318/v1/traces, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded; a request with a caller's `traceparent` "
        "follows the caller's decision. Decided before OpenTelemetry is called: a request "
        "that is not recorded costs nothing of it.",
    )
