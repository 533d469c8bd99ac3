"""OpenTelemetry spans for calls, handlers and event deliveries (the `otel` extra).

Imported only by `enable_tracing`: a process that never switches tracing on
imports nothing of OpenTelemetry. Spans follow the RPC and messaging
semantic conventions (docs/operations/observing.md):

| span | kind | name | parent |
| --- | --- | --- | --- |
| a call (`call()`) | CLIENT | `{service}/{method}` | the current span (the handler's, inside one) |
| a handler | SERVER | `{service}/{method}` | the caller's `traceparent` (none: a new trace) |
| `publish_event` | PRODUCER | `publish {subject}` | the current span |
| an event's handler | CONSUMER | `process {subject}` | the publisher's `traceparent` |

Spans are made by the tracer provider given to `enable_tracing` (or
OpenTelemetry's global one), so they go wherever its exporter sends them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
    TraceState,
)

from aegis_actors._dispatch import current_request
from aegis_actors._telemetry.context import UNSAMPLED, TraceContext, new_root
from aegis_actors._version import __version__

#: The `messaging.system` of every span: requests and events travel over NATS.
MESSAGING_SYSTEM: Final = "nats"
RPC_SYSTEM: Final = "aegis"
_EMPTY: Final = otel_context.Context()
_random = random.random

ProviderChoice = TracerProvider | Callable[[str], TracerProvider] | None


class Handling:
    """The span of one handler run (SERVER or CONSUMER), current while the handler runs."""

    __slots__ = ("span", "token", "trace")

    def __init__(self, span: Span, parent: TraceContext | None) -> None:
        self.span = span
        self.token = otel_context.attach(trace.set_span_in_context(span))
        self.trace = _trace_of(span, parent)

    def detach(self) -> None:
        """Leave the span's context (in the task that entered it)."""
        otel_context.detach(self.token)

    def end(self, status: int | None = None, code: str | None = None) -> None:
        """End the span; a 5xx `status` marks it failed (a 4xx is the caller's error)."""
        span = self.span
        if code is not None:
            span.set_attribute("error.type", code)
            span.set_attribute("aegis.status", status or 0)
            if status is None or status >= 500:
                span.set_status(Status(StatusCode.ERROR, code))
        span.end()


class Sending:
    """The span of one call or publish (CLIENT or PRODUCER): `trace` goes in its headers."""

    __slots__ = ("span", "trace")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.trace = _trace_of(span, None)

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def end(self, code: str | None = None) -> None:
        if code is not None:
            self.span.set_attribute("error.type", code)
            self.span.set_status(Status(StatusCode.ERROR, code))
        self.span.end()


class _UnsampledHandling(Handling):
    """A handler run of a trace that is not recorded: no span, nothing of the SDK called."""

    __slots__ = ()

    def __init__(self, trace_: TraceContext) -> None:
        self.trace = trace_

    def detach(self) -> None:
        pass

    def end(self, status: int | None = None, code: str | None = None) -> None:
        pass


class _UnsampledSending(Sending):
    """A call or publish of a trace that is not recorded: the context goes on, unsampled."""

    __slots__ = ()

    def __init__(self, trace_: TraceContext) -> None:
        self.trace = trace_

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def end(self, code: str | None = None) -> None:
        pass


class Tracing:
    """Makes the spans; `TELEMETRY.tracing` once `enable_tracing` ran."""

    def __init__(
        self, tracer_provider: ProviderChoice = None, sample_ratio: float | None = None
    ) -> None:
        self._provider = tracer_provider
        self._tracers: dict[str, Tracer] = {}
        self._ratio = sample_ratio
        """Set: aegis decides which new traces to record (and follows a parent's
        decision), so an unrecorded request calls nothing of OpenTelemetry."""

    def tracer(self, service: str | None) -> Tracer:
        """The tracer of `service` (a provider per service when given a function)."""
        key = service or ""
        tracer = self._tracers.get(key)
        if tracer is None:
            provider = self._provider
            if callable(provider) and not isinstance(provider, TracerProvider):
                provider = provider(key or "aegis-client")
            if provider is None:
                provider = trace.get_tracer_provider()
            tracer = self._tracers[key] = provider.get_tracer("aegis_actors", __version__)
        return tracer

    def handle(
        self,
        service: str,
        name: str,
        parent: TraceContext | None,
        attributes: Mapping[str, Any],
        *,
        event: bool = False,
    ) -> Handling:
        """Start and enter the span of a handler run, a child of the sender's `parent`."""
        if self._ratio is not None:
            if parent is None:
                if _random() >= self._ratio:
                    return _UnsampledHandling(new_root(UNSAMPLED))
            elif not parent.sampled:
                return _UnsampledHandling(parent)
        context = _EMPTY if parent is None else _remote(parent)
        kind = SpanKind.CONSUMER if event else SpanKind.SERVER
        span = self.tracer(service).start_span(
            name, context=context, kind=kind, attributes=attributes
        )
        return Handling(span, parent)

    def send(
        self, service: str | None, name: str, attributes: Mapping[str, Any], *, event: bool = False
    ) -> Sending:
        """Start the span of a call or a publish, a child of the current span."""
        if self._ratio is not None:
            request = current_request()
            if request is not None:
                if not request.trace.sampled:
                    return _UnsampledSending(request.trace)
            elif (
                # A new trace (no handler's, no span of the caller's own)...
                not trace.get_current_span().get_span_context().is_valid
                # ... that is not to be recorded.
                and _random() >= self._ratio
            ):
                return _UnsampledSending(new_root(UNSAMPLED))
        kind = SpanKind.PRODUCER if event else SpanKind.CLIENT
        span = self.tracer(service).start_span(name, kind=kind, attributes=attributes)
        return Sending(span)


def _remote(parent: TraceContext) -> otel_context.Context:
    state = TraceState.from_header([parent.state]) if parent.state else None
    span_context = SpanContext(
        int(parent.trace_id, 16),
        int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)),
        trace_state=state,
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), _EMPTY)


def _trace_of(span: Span, parent: TraceContext | None) -> TraceContext:
    ours = span.get_span_context()
    if parent is not None and ours.trace_id == int(parent.trace_id, 16):
        # A child of the caller's span: its trace id, flags and state as received.
        return TraceContext(parent.trace_id, f"{ours.span_id:016x}", parent.flags, parent.state)
    state = ours.trace_state.to_header() if ours.trace_state else None
    return TraceContext(
        f"{ours.trace_id:032x}", f"{ours.span_id:016x}", f"{ours.trace_flags:02x}", state
    )


def server_attributes(
    service: str, method: str, instance_id: str, subject: str, group: str | None
) -> dict[str, Any]:
    """RPC and messaging attributes of a handler's span."""
    attributes: dict[str, Any] = {
        "rpc.system": RPC_SYSTEM,
        "rpc.service": service,
        "rpc.method": method,
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": subject,
        "aegis.instance.id": instance_id,
    }
    if group:
        attributes["messaging.consumer.group.name"] = group
    return attributes
