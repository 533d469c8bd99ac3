"""Switching tracing on: `enable_tracing`, and the tracer providers of `[tracing]`."""

from __future__ import annotations

from typing import Any

from aegis_actors._telemetry.settings import TracingSettings
from aegis_actors._telemetry.state import TELEMETRY


def enable_tracing(tracer_provider: Any = None, *, sample_ratio: float | None = None) -> None:
    """Make OpenTelemetry spans for calls, handlers and event deliveries in this process.

    `tracer_provider` is an OpenTelemetry `TracerProvider`, or a function of
    a service name returning one (a resource per service), or None for
    OpenTelemetry's global provider: its exporter sends the spans. W3C
    trace context is propagated whether or not tracing is on.

    `sample_ratio` (0-1) has aegis decide which new traces to record, and
    follow the caller's decision for the others, before calling
    OpenTelemetry: a request that is not recorded then costs nothing of it.
    Give it with a provider that records what it is handed (the default
    sampler, `ParentBased(ALWAYS_ON)`); None leaves sampling to the provider.

    Raises:
        ImportError: OpenTelemetry is not installed (the `otel` extra).
    """
    try:
        from aegis_actors._telemetry.otel import Tracing
    except ImportError:
        raise ImportError("tracing needs OpenTelemetry: pip install 'aegis-actors[otel]'") from None
    if sample_ratio is not None and not 0 <= sample_ratio <= 1:
        raise ValueError(f"sample_ratio must be from 0 to 1, got {sample_ratio!r}")
    TELEMETRY.tracing = Tracing(tracer_provider, sample_ratio)


def disable_tracing() -> None:
    """Stop making spans (trace context is still propagated)."""
    TELEMETRY.tracing = None


class ServiceProviders:
    """A `TracerProvider` per service (its `service.name`), all sending through one exporter."""

    def __init__(self, settings: TracingSettings) -> None:
        """Raises ImportError: the `otel` extra, or the OTLP exporter for `otlp`, is missing."""
        try:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
            from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
        except ImportError:
            raise ImportError(
                "[tracing] needs OpenTelemetry: pip install 'aegis-actors[otel]'"
            ) from None
        if settings.exporter == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise ImportError(
                    "[tracing] exporter = 'otlp' needs the OTLP exporter: "
                    "pip install opentelemetry-exporter-otlp-proto-http"
                ) from None
            exporter: Any = OTLPSpanExporter(endpoint=settings.endpoint)
        elif settings.exporter == "console":
            exporter = ConsoleSpanExporter()
        else:
            exporter = _dropping_exporter()
        self._processor = BatchSpanProcessor(exporter)
        # `enable_tracing(..., sample_ratio=)` decides which new traces are recorded,
        # before OpenTelemetry is called; the providers record what they are given.
        self._sampler = ParentBased(ALWAYS_ON)
        self.sample_ratio = settings.sample_ratio
        self._providers: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        provider = self._providers.get(service)
        if provider is None:
            provider = self._providers[service] = TracerProvider(
                sampler=self._sampler, resource=Resource.create({"service.name": service})
            )
            provider.add_span_processor(self._processor)
        return provider

    def shutdown(self) -> None:
        """Export what is left and stop the exporter."""
        self._processor.shutdown()  # type: ignore[no-untyped-call]


def _dropping_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        """Takes spans and sends them nowhere (`exporter = "none"`)."""

        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Dropping()
