"""Telemetry: W3C trace context, Prometheus metrics, OpenTelemetry spans.

The operator's view of it all is docs/operations/observing.md. The hot
paths import only `context` and `state`: prometheus-client, aiohttp and
OpenTelemetry are imported once metrics or tracing are switched on.
"""
