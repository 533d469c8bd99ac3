"""The request path of one service, from its mailbox to the reply: `Request`, `Dispatcher`.

A `Request` is what the service's subscriptions put in its mailbox (the
subject, the reply subject, the body and the headers, nothing of the NATS
client's own message type); `Dispatcher.serve` answers it:

```
serve(request)
    accept:  a STANDBY refuses (503, not served); the subject's method, or 404
    start:   a `max_concurrency` slot (waiting here, in the actor's loop, is the
             back pressure: the mailbox fills while every slot is busy)
    run:     parse, the handler within the caller's deadline, dump
    finish:  the reply (an error reply for whatever went wrong), `EndpointStats`
```

`serve` is the one place where a request is accepted, started and finished:
admission control, metrics and tracing belong there. While a handler runs,
`current_request()` gives its `RequestContext` (deadline, trace id), which
the `call()`s it makes pass on. The envelope, the headers and the error codes
are described in docs/reference/wire-protocol.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import anyio
from anyio.abc import TaskGroup

from aegis_actors._endpoints import Endpoints, RpcEndpoint, unknown_method
from aegis_actors._errors import ErrorCode, ServiceError
from aegis_actors._ref import ActorRef
from aegis_actors._subjects import Subjects, check_subject, last_token
from aegis_actors._telemetry.context import (
    LOG_METHOD,
    LOG_TRACE_ID,
    TraceContext,
    incoming,
    new_root,
)
from aegis_actors._telemetry.histogram import LatencyHistogram
from aegis_actors._telemetry.state import TELEMETRY
from aegis_actors._transport import NatsClient
from aegis_actors._wire import (
    DEADLINE_HEADER,
    NOT_SERVED_HEADER,
    TRACE_ID_HEADER,
    Reply,
    error_reply,
    ok_reply_raw,
    parse_deadline,
)

if TYPE_CHECKING:
    from aegis_actors._telemetry.otel import Handling, Tracing


class Request(NamedTuple):
    """A request as it travels through a service's mailbox (immutable).

    A named tuple rather than a frozen dataclass: it is made for every
    request, and a tuple is made in a third of the time.
    """

    subject: str
    reply: str
    """Where the answer goes ("" when the sender waits for none)."""
    data: bytes
    headers: Mapping[str, str] | None


@dataclass(slots=True)
class RequestContext:
    """The request (or event) a handler is serving: read it with `current_request()`."""

    subject: str
    method: str
    headers: Mapping[str, str] | None
    deadline: float | None
    """Unix time (seconds) after which the caller no longer waits, from `Aegis-Deadline`."""
    trace: TraceContext
    """The W3C trace context that calls and events made while serving it pass on."""
    trace_id: str
    """The id log lines and replies show (`Aegis-Trace-Id`): the W3C trace id, or the
    caller's own `Aegis-Trace-Id` if it sent one without `traceparent`."""

    def remaining(self) -> float | None:
        """Seconds until the deadline (negative once past), None without a deadline."""
        return None if self.deadline is None else self.deadline - time.time()


def request_context(
    subject: str,
    method: str,
    headers: Mapping[str, str] | None,
    deadline: float | None,
    handling: Callable[[TraceContext | None], Handling] | None = None,
) -> tuple[RequestContext, Handling | None]:
    """The context of a request or event, and its span (`handling`: with tracing on).

    Without a span the caller's W3C context is passed on as received
    (docs/operations/observing.md); without one either, a trace starts here.
    """
    parent, legacy = incoming(headers)
    if handling is None:
        trace = parent or new_root()
        span = None
    else:
        span = handling(parent)
        trace = span.trace
    return RequestContext(subject, method, headers, deadline, trace, legacy or trace.trace_id), span


_current_request: ContextVar[RequestContext | None] = ContextVar("aegis_request", default=None)


def current_request() -> RequestContext | None:
    """The request the running handler serves (None outside a handler)."""
    return _current_request.get()


@dataclass(slots=True)
class EndpointStats:
    """Counters of one endpoint, as `$SRV.STATS` reports them (times in ns)."""

    name: str
    subject: str
    queue_group: str
    description: str = ""
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    """Error replies by error code (`/metrics`)."""

    def record(self, elapsed_ns: int, error: str | None = None) -> None:
        self.num_requests += 1
        self.processing_time += elapsed_ns
        if error is not None:
            self.num_errors += 1
            self.last_error = error
            # "STATUS CODE: message" (a request), "Type: message" (an event)
            status, _, rest = error.partition(" ")
            code = (rest if status.isdigit() else error).split(":", 1)[0]
            self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1

    @property
    def average_processing_time(self) -> int:
        return self.processing_time // self.num_requests if self.num_requests else 0

    def info(self) -> dict[str, Any]:
        metadata = {"description": self.description} if self.description else {}
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "metadata": metadata,
        }

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": self.num_requests,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "processing_time": self.processing_time,
            "average_processing_time": self.average_processing_time,
            "data": None,
        }


class Served(Protocol):
    """What the request path needs of the `ServiceActor` it serves (hooks, class attributes)."""

    service_name: ClassVar[str]
    description: ClassVar[str]
    max_request_bytes: ClassVar[int]
    drain_timeout: ClassVar[float]
    actor_ref: ActorRef
    actor_log: Any

    def extra_subjects(self) -> Mapping[str, str]: ...
    def extra_subjects_root(self) -> str | None: ...
    async def health(self) -> bool: ...
    async def on_configuration_changed(self, new: Any, old: Any) -> None: ...
    async def on_leadership_changed(self, active: bool) -> None: ...
    async def on_receive(self, message: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Unrouted:
    """A request under `extra_subjects_root()` on none of `extra_subjects()`: answered 404."""

    request: Request


@dataclass(frozen=True, slots=True)
class _Route:
    """Where requests on one of `extra_subjects()` go, and where they are counted."""

    method: str
    stats: EndpointStats


class Dispatcher:
    """Routes, limits, runs and answers the requests of one service."""

    def __init__(self, service: Served, endpoints: Endpoints) -> None:
        self.service = service
        self.endpoints = endpoints
        self.nats: NatsClient | None = None
        """The connection replies go out on (set when the server opens: one per tree)."""
        self.refusing: str | None = None
        """The sticky-active group in which the instance is STANDBY: it refuses requests."""
        self.refused: tuple[bytes, dict[str, str]] = (b"", {})
        self.stats: dict[str, EndpointStats] = {}
        self.routes: dict[str, _Route] = {}
        self.root: str | None = None
        """The root of `extra_subjects_root()`, with its trailing dot."""
        self.rooted: list[str] = []
        """The extra subjects under the root, relative to it (named in a 404)."""
        self._limiters: dict[str, anyio.Semaphore] = {}
        self._running = 0
        self._idle = anyio.Event()
        self._idle.set()
        self.tg: TaskGroup | None = None
        """Where calls with `max_concurrency` run (the server's task group, once started)."""
        self.latency: dict[str, LatencyHistogram] = {}
        """Request durations by method (observed with metrics on)."""
        self.in_flight = 0
        """Requests started and not yet answered."""
        self.refused_count: dict[str, int] = {}
        """Requests answered without running, by reason (`standby`)."""
        self._span_attributes: dict[str, tuple[str, dict[str, Any]]] = {}
        self.instance_id = ""
        self.group = ""
        self.own_prefix = "-"
        """The prefix of the instance's own subjects (requests there bypass the queue group)."""

    def configure(self, subjects: Subjects, group: str, instance_id: str = "") -> None:
        """Build the routes, the counters and the limits (at start, before `on_start`)."""
        name = self.service.service_name
        self.instance_id, self.group = instance_id, group
        if instance_id:
            self.own_prefix = subjects.instance_all(instance_id)[:-1]
        rpcs = self.endpoints.rpc.values()
        self._limiters = {
            e.name: anyio.Semaphore(e.max_concurrency) for e in rpcs if e.max_concurrency > 1
        }
        self.stats = {
            e.name: EndpointStats(e.name, subjects.rpc(name, e.name), group, e.description)
            for e in rpcs
        }
        self.latency = {e.name: LatencyHistogram() for e in rpcs}
        self.routes = self._extra_routes(group)

    @property
    def running(self) -> int:
        """Calls with `max_concurrency` still running."""
        return self._running

    async def wait_idle(self) -> None:
        """Return once no call with `max_concurrency` runs."""
        await self._idle.wait()

    def standby(self, group: str | None, instance_id: str) -> None:
        """Refuse requests from now on (`group` None: serve them again)."""
        self.refusing = group
        if group is not None:
            self.refused = standby_refusal(instance_id, group)

    def _extra_routes(self, group: str) -> dict[str, _Route]:
        service, rpcs = self.service, self.endpoints.rpc
        root = service.extra_subjects_root()
        self.root = None if root is None else check_subject(root) + "."
        routes = {}
        for subject, method in service.extra_subjects().items():
            endpoint = rpcs.get(method)
            if endpoint is None:
                known = ", ".join(sorted(rpcs)) or "none"
                raise TypeError(
                    f"{type(service).__name__}.extra_subjects() maps {subject!r} to {method!r}, "
                    f"which is not one of its RPC methods ({known})"
                )
            check_subject(subject)
            stats = EndpointStats(endpoint.name, subject, group, endpoint.description)
            routes[subject] = _Route(endpoint.name, stats)
        prefix = self.root
        self.rooted = sorted(s[len(prefix) :] for s in routes if prefix and s.startswith(prefix))
        return routes

    # -- requests ----------------------------------------------------------------------

    async def serve(self, request: Request) -> None:
        """Accept (or refuse) `request`, start it, run its handler, and finish it with a reply."""
        if self.refusing is not None:
            self.refused_count["standby"] = self.refused_count.get("standby", 0) + 1
            await self.reply(request, *self.refused)
            return
        started = time.perf_counter_ns()
        subject = request.subject
        route = self.routes.get(subject)
        method = last_token(subject) if route is None else route.method
        endpoint = self.endpoints.rpc.get(method)
        if endpoint is None:
            rpcs = list(self.endpoints.rpc)
            error = unknown_method(self.service.service_name, method, rpcs)
            await self.reply(request, *error_reply(error))
            return
        stats = self.stats[method] if route is None else route.stats
        limiter = self._limiters.get(method)
        if limiter is None:
            await self._run(endpoint, stats, request, started)
            return
        # Waiting here, in the actor's loop, is the back pressure: the mailbox
        # fills while all N slots are busy. A free slot is taken without
        # yielding: anyio's acquire() always yields to the event loop, which
        # let the actor start one call per loop turn (5.9k calls/s with 100
        # in flight, against 27.7k one at a time).
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        self._running += 1
        self._idle = anyio.Event()
        assert self.tg is not None
        self.tg.start_soon(self._run_limited, limiter, endpoint, stats, request, started)

    async def serve_unrouted(self, request: Request) -> None:
        assert self.root is not None  # only the root's subscription makes these
        name = request.subject[len(self.root) :]
        error = unknown_method(self.service.service_name, name, self.rooted)
        await self.reply(request, *error_reply(error))

    async def _run_limited(
        self,
        limiter: anyio.Semaphore,
        endpoint: RpcEndpoint,
        stats: EndpointStats,
        request: Request,
        started: int,
    ) -> None:
        try:
            await self._run(endpoint, stats, request, started)
        finally:
            limiter.release()
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def _run(
        self, endpoint: RpcEndpoint, stats: EndpointStats, request: Request, started: int
    ) -> None:
        headers = request.headers
        deadline = parse_deadline(headers.get(DEADLINE_HEADER)) if headers else None
        tracing = TELEMETRY.tracing
        context, span = request_context(
            request.subject,
            endpoint.name,
            headers,
            deadline,
            None if tracing is None else partial(self._span, tracing, endpoint.name, request),
        )
        trace_id = context.trace_id
        self.in_flight += 1
        token = _current_request.set(context)
        # Every log line of the handler (the user's own too) carries the trace id.
        logged = LOG_TRACE_ID.set(trace_id), LOG_METHOD.set(endpoint.name)
        reply_headers = {TRACE_ID_HEADER: trace_id}
        failure: str | None = None
        status = code = None
        try:
            body = await self._call_handler(endpoint, request.data, deadline)
        except ServiceError as exc:
            failure = f"{exc.status} {exc.code}: {exc.message}"
            status, code = exc.status, exc.code
            body, reply_headers = error_reply(exc)
            reply_headers[TRACE_ID_HEADER] = trace_id
        except Exception as exc:
            self.service.actor_log.exception(
                "handler failed", method=endpoint.name, trace_id=trace_id
            )
            error = ServiceError.of(
                ErrorCode.INTERNAL, f"internal error (trace id {trace_id})", traceId=trace_id
            )
            failure = f"500 INTERNAL: {type(exc).__name__}"
            status, code = 500, ErrorCode.INTERNAL.value
            body, reply_headers = error_reply(error)
            reply_headers[TRACE_ID_HEADER] = trace_id
        finally:
            LOG_METHOD.reset(logged[1])
            LOG_TRACE_ID.reset(logged[0])
            _current_request.reset(token)
            if span is not None:
                span.detach()
        failure = await self.reply(request, body, reply_headers) or failure
        self.in_flight -= 1
        elapsed = time.perf_counter_ns() - started
        stats.record(elapsed, failure)
        if TELEMETRY.metrics:
            self.latency[endpoint.name].observe_ns(elapsed)
        if span is not None:
            span.end(status, code)

    def _span(
        self, tracing: Tracing, method: str, request: Request, parent: TraceContext | None
    ) -> Handling:
        service = self.service.service_name
        subject = request.subject
        known = self._span_attributes.get(subject)
        if known is None:  # once per subject: they are the routes' (unknown ones are 404s)
            from aegis_actors._telemetry.otel import server_attributes

            group = None if subject.startswith(self.own_prefix) else self.group
            attributes = server_attributes(service, method, self.instance_id, subject, group)
            known = self._span_attributes[subject] = (f"{service}/{method}", attributes)
        return tracing.handle(service, known[0], parent, known[1])

    async def _call_handler(
        self, endpoint: RpcEndpoint, data: bytes, deadline: float | None
    ) -> bytes:
        limit = self.service.max_request_bytes
        if len(data) > limit:
            raise ServiceError.of(
                ErrorCode.BAD_REQUEST,
                f"request of {len(data)} bytes is over the {limit} byte limit",
            )
        params = endpoint.parse(data)
        args = () if endpoint.params is None else (params,)
        if deadline is None:
            result = await endpoint.func(self.service, *args)
        else:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise ServiceError.of(
                    ErrorCode.DEADLINE_EXCEEDED, "the caller's deadline passed before the call"
                )
            # Past the deadline nobody waits for the answer: stop spending on it.
            with anyio.move_on_after(remaining) as scope:
                result = await endpoint.func(self.service, *args)
            if scope.cancelled_caught:
                raise ServiceError.of(
                    ErrorCode.DEADLINE_EXCEEDED,
                    f"{endpoint.name} ran past the caller's deadline",
                )
        if type(result) is Reply:
            return result.encode()
        return ok_reply_raw(endpoint.dump(result))

    async def reply(
        self, request: Request, body: bytes, headers: dict[str, str] | None = None
    ) -> str | None:
        """Send a reply; one the server would refuse as too large becomes a 500 saying so.

        Returns the failure (for STATS) when it had to answer with that 500.
        """
        if not request.reply:
            return None  # published without a reply subject: nobody waits
        nats = self.nats
        assert nats is not None  # requests arrive only once the server has opened
        failure = None
        if len(body) > nats.max_payload:
            # Dropped, it would leave the caller waiting for its whole timeout.
            failure = f"500 INTERNAL: a reply of {len(body)} bytes is over max_payload"
            self.service.actor_log.error(
                "reply too large", subject=request.subject, size=len(body), limit=nats.max_payload
            )
            body, headers = error_reply(
                ServiceError.of(
                    ErrorCode.INTERNAL,
                    f"the reply of {len(body)} bytes is over the server's limit of "
                    f"{nats.max_payload} bytes (max_payload)",
                    size=len(body),
                    limit=nats.max_payload,
                )
            )
        try:
            await nats.publish(request.reply, body, headers=headers)
        except Exception as exc:
            self.service.actor_log.warning("reply failed", subject=request.subject, error=repr(exc))
        return failure


def standby_refusal(instance_id: str, group: str | None) -> tuple[bytes, dict[str, str]]:
    """The reply of a STANDBY instance to a request that reached it: 503, not served.

    Requests queued when an instance steps down reach it after it has
    stopped serving. `NOT_SERVED_HEADER` tells callers that no handler ran,
    so they send the request on to the ACTIVE instance.
    """
    body, headers = error_reply(
        ServiceError.of(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"instance {instance_id} is STANDBY in sticky-active group {group!r}: "
            "the ACTIVE instance takes the calls",
            instanceId=instance_id,
            stickyActiveGroup=group,
        )
    )
    headers[NOT_SERVED_HEADER] = "standby"
    return body, headers
