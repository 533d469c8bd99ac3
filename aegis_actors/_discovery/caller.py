"""`Caller`: `call(service, method, params)` with discovery, strategies and failover.

One caller serves an instance (all its actors) or a `Client`. A call
(docs/guides/calls.md):

1. takes the service's view from the discovery snapshot (a dict access; on a
   miss the cache actor reads the registry);
2. picks an instance by the service's strategy among those the view says may
   be called (not UNHEALTHY; not STANDBY in a sticky-active service);
3. sends the request to `aegis.inst.{service}.{instanceId}.{method}`, with
   `Aegis-Deadline` and the trace context (`traceparent`, `Aegis-Trace-Id`:
   inside a handler, the handler's trace; with tracing on, the call's span);
4. on "no responders" evicts the instance and tries another, within the same
   deadline; once every cached instance failed it rereads the registry once;
5. never retries after an error reply (the call may have had effects), and
   after a timeout only if the method is idempotent (the caller says so, or
   every registered instance of the service declares it): then each attempt
   may use `attempt_share` of the time left, so a retry has time.

Without discovery (`discovery=False`, mode `off`, or registration turned
off) the request goes to the queue group `aegis.rpc.{service}.{method}` and
NATS picks the instance.

Requests go through one shared `Requester` per connection. It spends about a
third less client CPU per request than nats-py's own `request()` (no
`asyncio.wait_for` per request); that saving pays for what a call adds (the
`Aegis-Deadline` header, the envelope, the bookkeeping of discovery), so a
call costs about what a bare `request()` does (bench/discovery.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypedDict

import anyio
from pydantic_core import from_json

from aegis_actors._discovery.settings import DiscoverySettings
from aegis_actors._discovery.snapshot import DiscoveryCache, DiscoveryStatistics, ServiceView
from aegis_actors._discovery.strategies import Picker, picker
from aegis_actors._dispatch import current_request
from aegis_actors._errors import (
    ErrorCode,
    NatsUnavailableError,
    NoRespondersError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServiceError,
)
from aegis_actors._requester import Requester
from aegis_actors._subjects import Subjects, check_method_name, check_service_name
from aegis_actors._telemetry import tracked
from aegis_actors._telemetry.context import headers_for, new_root
from aegis_actors._telemetry.histogram import LatencyHistogram
from aegis_actors._telemetry.state import TELEMETRY
from aegis_actors._transport import Msg, NatsClient
from aegis_actors._wire import (
    DEADLINE_HEADER,
    NOT_SERVED_HEADER,
    deadline_header,
    decode_reply,
    encode_json,
)

if TYPE_CHECKING:
    from aegis_actors._telemetry.otel import Sending

_NULL: Final = b"null"
#: Per-instance counters kept at most for this many instances (a long-lived
#: caller sees instances come and go); past it they start over.
MAX_TRACKED_INSTANCES: Final = 4096
#: The least time a lookup may be given, so a nearly spent deadline still
#: fails with a clear error rather than a zero timeout.
_MIN_WAIT: Final = 0.001


class _Route:
    """What calls of one (service, method) reuse: its picker and its instance subjects."""

    __slots__ = ("_by_instance", "_subjects", "method", "picker")

    def __init__(self, subjects: Subjects, method: str, picker: Picker) -> None:
        self._subjects = subjects
        self.method = method
        self.picker = picker
        self._by_instance: dict[str, str] = {}

    def subject(self, instance_id: str) -> str:
        """`aegis.inst.{service}.{instanceId}.{method}`, built once per instance."""
        subject = self._by_instance.get(instance_id)
        if subject is None:
            if len(self._by_instance) >= MAX_TRACKED_INSTANCES:
                self._by_instance.clear()
            subject = self._subjects.instance(instance_id, self.method)
            self._by_instance[instance_id] = subject
        return subject


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    failures: int = 0
    total_ns: int = 0


@dataclass(slots=True)
class TargetTally:
    """What one caller's calls to one service did (for `/metrics`)."""

    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    """Calls that raised, by error code (or exception type)."""
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True, slots=True)
class InstanceCallStatistics:
    """What one caller saw of one instance."""

    calls: int
    """Attempts that got a reply (success or error reply)."""
    failures: int
    """Attempts that got none (no responders, timeout)."""
    outstanding: int
    mean_latency: float | None
    """Seconds, over the attempts that got a reply."""


@dataclass(frozen=True, slots=True)
class CallStatistics:
    """Counters of a caller (docs/guides/calls.md), with its discovery cache's."""

    calls: int
    failed: int
    """Calls that raised (error replies included)."""
    retries: int
    """Attempts after the first, over all calls."""
    instances: Mapping[str, InstanceCallStatistics]
    discovery: DiscoveryStatistics | None


class CallOptions(TypedDict, total=False):
    """The options of `ServiceActor.call` and `Client.call` (all of them optional)."""

    timeout: float | None
    """Seconds for the whole call, retries included (default: `discovery.call_timeout`);
    inside a handler, never past the deadline of the request being served."""
    idempotent: bool
    """The method may run twice, so a timed-out attempt is retried on another
    instance (methods the callee declares `@rpc(idempotent=True)` are anyway)."""
    discovery: bool
    """False sends to the service's queue group instead (NATS picks the instance)."""


class Caller:
    """Calls methods of services; one per instance or client, shared by its tasks.

    `call` is the one implementation of `ServiceActor.call` and `Client.call`.
    """

    def __init__(
        self,
        client: Callable[[], NatsClient],
        subjects: Subjects,
        settings: DiscoverySettings,
        cache: DiscoveryCache | None,
    ) -> None:
        self._client = client
        self._subjects = subjects
        self.settings = settings
        self.cache = cache
        self._timeout = settings.call_timeout
        self._share = settings.attempt_share
        self._max_attempts = settings.max_attempts
        self._requester: Requester | None = None
        self._starting: anyio.Lock | None = None
        self._routes: dict[tuple[str, str], _Route] = {}
        self._pickers: dict[str, Picker] = {}
        self._outstanding: dict[str, int] = {}
        self._tallies: dict[str, _Tally] = {}
        self.calls = 0
        self.failed = 0
        self.retries = 0
        self.targets: dict[str, TargetTally] = {}
        """Calls, errors and latency by called service (kept with metrics or tracing on)."""
        self.owner: str | None = None
        """The service whose instance calls through this caller (None: a `Client`)."""
        self.instance_id = ""
        tracked.CALLERS.add(self)

    async def call(
        self,
        service: str,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        discovery: bool = True,
        envelope: bool = False,
    ) -> Any:
        """Call `method` of `service` with `params` (a model or JSON value); return its data.

        The options are `CallOptions`'s; `envelope=True` returns the whole
        success reply as a dict (`ok`, `status`, `data`, `revision`), as the
        service sent it.

        Raises:
            ServiceError: the error reply of the method; or SERVICE_UNAVAILABLE
                (no healthy instance, registry unreachable with nothing cached,
                NATS unusable), DEADLINE_EXCEEDED (no reply in time) or
                PERMISSION_DENIED (our credentials may not send to the subject).
            ValueError: a bad service or method name, timeout, or params that
                are not JSON or too large for the server.
        """
        tracing = TELEMETRY.tracing
        if tracing is None and not TELEMETRY.metrics:
            return await self._call(
                service, method, params, timeout, idempotent, discovery, envelope, None
            )
        # Metrics and spans: around the call, so the call body stays the hot path's.
        sending = (
            None
            if tracing is None
            else tracing.send(self.owner, f"{service}/{method}", _call_attributes(service, method))
        )
        target = self.targets.get(service) or self._new_target(service)
        target.calls += 1
        started = time.perf_counter_ns()
        code: str | None = None
        try:
            return await self._call(
                service, method, params, timeout, idempotent, discovery, envelope, sending
            )
        except ServiceError as exc:
            code = exc.code
            raise
        except BaseException as exc:
            code = type(exc).__name__
            raise
        finally:
            target.latency.observe_ns(time.perf_counter_ns() - started)
            if code is not None:
                target.errors[code] = target.errors.get(code, 0) + 1
            if sending is not None:
                sending.end(code)

    def _new_target(self, service: str) -> TargetTally:
        if len(self.targets) >= MAX_TRACKED_INSTANCES:
            self.targets.clear()
        tally = self.targets[service] = TargetTally()
        return tally

    async def _call(
        self,
        service: str,
        method: str,
        params: Any,
        timeout: float | None,
        idempotent: bool,
        discovery: bool,
        envelope: bool,
        sending: Sending | None,
    ) -> Any:
        # The hot path: one coroutine, dict lookups, no mailbox; every line
        # here costs every call (see bench/discovery.py).
        route = self._routes.get((service, method)) or self._new_route(service, method)
        if timeout is None:
            timeout = self._timeout
        elif not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        request = current_request()
        if sending is not None:
            trace = sending.trace
            headers = headers_for(trace, trace.trace_id if request is None else request.trace_id)
        elif request is not None:
            headers = headers_for(request.trace, request.trace_id)
        else:
            trace = new_root()
            headers = headers_for(trace, trace.trace_id)
        if request is not None:
            left = request.remaining()
            if left is not None and left < timeout:
                if left <= 0:
                    raise ServiceError.of(
                        ErrorCode.DEADLINE_EXCEEDED,
                        f"the request being served is past its deadline; not calling "
                        f"{service}.{method}",
                    )
                timeout = left
        try:
            payload = _NULL if params is None else encode_json(params)
        except ValueError as exc:
            raise ValueError(f"params of {service}.{method} are {exc}") from None
        self.calls += 1
        cache = self.cache
        try:
            requester = self._requester
            if requester is None or requester.client is not self._client():
                requester = await self._start_requester()
            if not discovery or cache is None:
                return await self._call_group(
                    requester, service, method, payload, headers, timeout, idempotent, envelope
                )
            now = time.monotonic
            deadline = now() + timeout
            choose = route.picker
            outstanding = self._outstanding
            tried: set[str] | None = None
            reloaded = False
            timeouts = 0
            while True:
                view = cache.lookup(service)
                if view is None:
                    view = await cache.fetch(service, timeout=max(deadline - now(), _MIN_WAIT))
                instance_id = choose.pick(view.ids, tried)
                if instance_id is None and tried and not reloaded:
                    # Every instance we knew failed: the registry may know new ones.
                    reloaded = True
                    view = await cache.fetch(
                        service, timeout=max(deadline - now(), _MIN_WAIT), force=True
                    )
                    instance_id = choose.pick(view.ids, tried)
                if instance_id is None:
                    raise _unavailable(service, method, view, tried)
                remaining = deadline - now()
                if remaining <= 0:
                    raise _deadline_exceeded(service, method, timeout)
                retry = idempotent or method in view.idempotent
                attempt = self._attempt_time(remaining, retry, timeouts)
                headers[DEADLINE_HEADER] = deadline_header(attempt)
                tally = self._tallies.get(instance_id) or self._new_tally(instance_id)
                outstanding[instance_id] = outstanding.get(instance_id, 0) + 1
                started = time.perf_counter_ns()
                try:
                    msg = await requester.request(
                        route.subject(instance_id), payload, timeout=attempt, headers=headers
                    )
                except NoRespondersError:
                    tally.failures += 1
                    cache.evict(service, instance_id)
                except RequestTimeoutError:
                    tally.failures += 1
                    timeouts += 1
                    if not retry or timeouts >= self._max_attempts:
                        raise _deadline_exceeded(service, method, timeout) from None
                else:
                    tally.calls += 1
                    tally.total_ns += time.perf_counter_ns() - started
                    if not _not_served(msg):
                        return _result(msg.data, envelope)
                    # A STANDBY refused it unrun: the registry has not said so yet.
                    cache.evict(service, instance_id)
                finally:
                    left = outstanding[instance_id] - 1
                    if left:
                        outstanding[instance_id] = left
                    else:
                        del outstanding[instance_id]
                self.retries += 1
                if tried is None:
                    tried = set()
                tried.add(instance_id)
        except PermissionDeniedError as exc:
            self.failed += 1
            raise ServiceError.denied(exc) from None
        except NatsUnavailableError as exc:
            self.failed += 1
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"cannot call {service}.{method}: {exc}",
                service=service,
            ) from exc
        except Exception:
            self.failed += 1
            raise

    async def _call_group(
        self,
        requester: Requester,
        service: str,
        method: str,
        payload: bytes,
        headers: dict[str, str],
        timeout: float,
        idempotent: bool,
        envelope: bool,
    ) -> Any:
        subject = self._subjects.rpc(service, method)
        deadline = time.monotonic() + timeout
        timeouts = refusals = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _deadline_exceeded(service, method, timeout)
            attempt = self._attempt_time(remaining, idempotent, timeouts)
            headers[DEADLINE_HEADER] = deadline_header(attempt)
            try:
                msg = await requester.request(subject, payload, timeout=attempt, headers=headers)
            except NoRespondersError:
                raise ServiceError.of(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"no instance of {service!r} serves {method!r} (nobody subscribes to "
                    f"{subject})",
                    service=service,
                ) from None
            except RequestTimeoutError:
                timeouts += 1
                if not idempotent or timeouts >= self._max_attempts:
                    raise _deadline_exceeded(service, method, timeout) from None
                self.retries += 1
                continue
            if _not_served(msg):
                # Queued at a STANDBY as it stepped down; the group now has
                # only the ACTIVE instance (or nobody: no responders).
                refusals += 1
                if refusals >= self._max_attempts:
                    raise ServiceError.of(
                        ErrorCode.SERVICE_UNAVAILABLE,
                        f"{refusals} instances of {service!r} refused {method!r} as STANDBY",
                        service=service,
                    )
                self.retries += 1
                continue
            return _result(msg.data, envelope)

    # -- machinery ------------------------------------------------------------------------

    def _attempt_time(self, remaining: float, idempotent: bool, timeouts: int) -> float:
        """How long the next attempt may wait: all that is left, unless a retry after
        its timeout is allowed and possible; then a share, so the retry has time."""
        if idempotent and timeouts + 1 < self._max_attempts:
            return remaining * self._share
        return remaining

    def _new_route(self, service: str, method: str) -> _Route:
        check_service_name(service)
        check_method_name(method)
        picker_ = self._pickers.get(service)
        if picker_ is None:
            picker_ = self._pickers[service] = picker(
                self.settings.strategy_for(service), self._outstanding
            )
        if len(self._routes) >= MAX_TRACKED_INSTANCES:
            self._routes.clear()
        route = self._routes[service, method] = _Route(self._subjects, method, picker_)
        return route

    async def _start_requester(self) -> Requester:
        if self._starting is None:
            self._starting = anyio.Lock()
        async with self._starting:
            client = self._client()
            requester = self._requester
            if requester is None or requester.client is not client:
                requester = Requester(client)
                await requester.start()
                self._requester = requester
            return requester

    async def close(self) -> None:
        """Stop the requester (calls still waiting fail with SERVICE_UNAVAILABLE)."""
        requester, self._requester = self._requester, None
        if requester is not None:
            await requester.close()

    def _new_tally(self, instance_id: str) -> _Tally:
        if len(self._tallies) >= MAX_TRACKED_INSTANCES:
            self._tallies.clear()
        tally = self._tallies[instance_id] = _Tally()
        return tally

    def statistics(self) -> CallStatistics:
        instances = {
            instance_id: InstanceCallStatistics(
                calls=t.calls,
                failures=t.failures,
                outstanding=self._outstanding.get(instance_id, 0),
                mean_latency=t.total_ns / t.calls / 1e9 if t.calls else None,
            )
            for instance_id, t in self._tallies.items()
        }
        return CallStatistics(
            calls=self.calls,
            failed=self.failed,
            retries=self.retries,
            instances=instances,
            discovery=self.cache.statistics() if self.cache is not None else None,
        )


def _call_attributes(service: str, method: str) -> dict[str, Any]:
    """RPC and messaging attributes of a call's span."""
    return {
        "rpc.system": "aegis",
        "rpc.service": service,
        "rpc.method": method,
        "messaging.system": "nats",
        "messaging.operation.type": "send",
    }


def _not_served(msg: Msg) -> bool:
    headers = msg.headers
    return headers is not None and NOT_SERVED_HEADER in headers


def _result(reply: bytes, envelope: bool) -> Any:
    data = decode_reply(reply)[0]
    return from_json(reply) if envelope else data


def _deadline_exceeded(service: str, method: str, timeout: float) -> ServiceError:
    return ServiceError.of(
        ErrorCode.DEADLINE_EXCEEDED,
        f"{service}.{method} did not answer within {timeout:g} s",
        service=service,
        method=method,
    )


def _unavailable(
    service: str, method: str, view: ServiceView, tried: set[str] | None
) -> ServiceError:
    if tried:
        return ServiceError.of(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"no instance of {service!r} answered {method!r}; tried {', '.join(sorted(tried))}",
            service=service,
            tried=sorted(tried),
        )
    return ServiceError.of(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"no healthy instance of {service!r} ({view.describe()})",
        service=service,
    )
