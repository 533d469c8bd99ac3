"""W3C trace context (`traceparent`, `tracestate`) on requests, calls and events.

Every request and event a service handles has a trace: the caller's, when
it sent a valid `traceparent`, or a new one. Calls and events sent while
handling it carry it on: `traceparent` (the trace id and the span the next
hop is a child of), `tracestate` as received, and `Aegis-Trace-Id`.

`Aegis-Trace-Id` is the id log lines, replies and error details show: the
W3C trace id (32 hex digits), unless a caller that sends no `traceparent`
sent an `Aegis-Trace-Id` of its own, which is then kept (older callers find
their id in the logs as before) and passed on beside the W3C context.

Without OpenTelemetry spans, a service records nothing, so it passes the
caller's `traceparent` on unchanged (as a proxy that records nothing
would): a service further down that records spans then has the last
recorded span as its parent, not a span nobody exported. With spans on
(`otel`), the next hop's parent is the span of the call.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Final, NamedTuple

from structlog.contextvars import bind_contextvars, reset_contextvars

from aegis_actors._text import TRACE_ID
from aegis_actors._wire import TRACE_ID_HEADER

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

#: version-traceid-parentid-flags; a version after 00 may append fields.
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
#: W3C: a `tracestate` of more than 512 characters may be dropped; so is one
#: holding anything but printable ASCII (it goes back into headers as is).
MAX_TRACESTATE: Final = 512
_TRACESTATE: Final = re.compile(r"[\x20-\x7e]*")

_random = random.Random()
#: OpenTelemetry's SDK makes its ids with `random.getrandbits` too: ids must be
#: unique, not secret, and this is 10x faster than `secrets`.
_bits = _random.getrandbits


def new_trace_id() -> str:
    return "%032x" % (_bits(128) or 1)


def new_span_id() -> str:
    return "%016x" % (_bits(64) or 1)


class TraceContext(NamedTuple):
    """One hop of a trace: its trace id, the span id the next hop is a child of, flags, state.

    A named tuple: one is made for every request.
    """

    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits."""
    flags: str = "01"
    """2 hex digits; `01` = sampled."""
    state: str | None = None
    """The `tracestate` header, passed on as received."""

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)


#: The flags of a trace that is not recorded (`01`: recorded).
UNSAMPLED: Final = "00"


def new_root(flags: str = "01") -> TraceContext:
    """A trace that starts here (sampled by default: a service further on that records
    spans keeps it)."""
    return TraceContext(new_trace_id(), new_span_id(), flags)


def parse_traceparent(value: str | None, state: str | None = None) -> TraceContext | None:
    """The context of a `traceparent` value, or None if absent or invalid (W3C rules)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if len(value) != 55 and (version == "00" or value[55] != "-"):
        return None
    if state is not None and (len(state) > MAX_TRACESTATE or not _TRACESTATE.fullmatch(state)):
        state = None
    return TraceContext(trace_id, span_id, flags, state or None)


def incoming(headers: Mapping[str, str] | None) -> tuple[TraceContext | None, str | None]:
    """The caller's W3C context and its own `Aegis-Trace-Id` (each None when absent or invalid).

    The caller's `Aegis-Trace-Id` is returned only when it differs from its
    W3C trace id (an older caller's own id): otherwise the W3C id is the one.
    """
    if not headers:
        return None, None
    parent = parse_traceparent(headers.get(TRACEPARENT), headers.get(TRACESTATE))
    legacy = headers.get(TRACE_ID_HEADER)
    if legacy is None or (parent is not None and legacy == parent.trace_id):
        return parent, None
    # Kept only when short and made of what ids use: it is echoed in replies and logs.
    return parent, legacy if TRACE_ID.fullmatch(legacy) else None


def headers_for(trace: TraceContext, trace_id: str) -> dict[str, str]:
    """The headers that carry `trace` (and the `Aegis-Trace-Id` `trace_id`) to the next hop."""
    headers = {TRACEPARENT: trace.traceparent, TRACE_ID_HEADER: trace_id}
    if trace.state:
        headers[TRACESTATE] = trace.state
    return headers


def _structlog_var(key: str) -> ContextVar[Any]:
    """structlog's own context variable for `key`, as `bind_contextvars` makes it.

    Setting it directly costs a fifth of `bind_contextvars` + `reset_contextvars`
    (which build dicts of tokens), and `merge_contextvars` reads it the same.
    """
    tokens = bind_contextvars(**{key: None})
    reset_contextvars(**tokens)
    return tokens[key].var


#: What every log line written while a request or event is handled carries
#: (set by the dispatcher; read by structlog's `merge_contextvars`).
LOG_TRACE_ID: Final = _structlog_var("trace_id")
LOG_METHOD: Final = _structlog_var("method")
