"""Declaring RPC methods and event handlers on a `ServiceActor`: `@rpc` and `@event`.

The decorators only mark functions; `collect()` turns the marks of a class
into endpoints with pydantic `TypeAdapter`s built from the type hints, once
per class. A handler takes its parameters as its one argument after `self`
(a pydantic model or any JSON type) or none at all; what it returns is dumped
to JSON (by alias, so camelCase models stay camelCase).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, overload

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from aegis_actors._errors import ErrorCode, ServiceError
from aegis_actors._events.options import Deliver, DurableOptions, durable_options
from aegis_actors._subjects import check_durable_pattern, check_event_subject, check_method_name
from aegis_actors._wire import from_validation_error, non_json_number

_RPC_MARK: Final = "__aegis_rpc__"
_EVENT_MARK: Final = "__aegis_event__"

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _RpcMark:
    name: str | None
    idempotent: bool
    max_concurrency: int
    description: str | None


@dataclass(frozen=True, slots=True)
class _EventMark:
    pattern: str
    broadcast: bool
    durable: DurableOptions | None
    max_concurrency: int
    dedupe: int | None


def _require_coroutine(decorator: str, func: object) -> None:
    # A separate function: narrowing with iscoroutinefunction() in place loses F.
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"{decorator} needs an async def method, got {func!r}")


@overload
def rpc(func: F, /) -> F: ...
@overload
def rpc(
    *,
    name: str | None = None,
    idempotent: bool = False,
    max_concurrency: int = 1,
    description: str | None = None,
) -> Callable[[F], F]: ...
def rpc(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    idempotent: bool = False,
    max_concurrency: int = 1,
    description: str | None = None,
) -> F | Callable[[F], F]:
    """Serve this coroutine method as an RPC method (named after the function by default).

    Args:
        name: the method name on the wire (`aegis.rpc.{service}.{name}`).
        idempotent: calling it twice is harmless, so callers retry it on another
            instance after a timeout (the registry record lists it under
            `metadata.idempotentMethods`; see `ServiceActor.call`).
        max_concurrency: how many calls may run at once (default 1: the actor model);
            more suits I/O-bound methods that touch no shared state in between awaits.
        description: shown in `$SRV.INFO`; defaults to the docstring's first line.
    """

    def mark(f: F) -> F:
        _require_coroutine("@rpc", f)
        if name is not None:
            check_method_name(name)
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        setattr(f, _RPC_MARK, _RpcMark(name, idempotent, max_concurrency, description))
        return f

    return mark(func) if func is not None else mark


def event(
    pattern: str,
    *,
    broadcast: bool = False,
    durable: bool = False,
    max_concurrency: int = 1,
    dedupe: int | None = None,
    max_deliver: int | None = None,
    backoff: float | Sequence[float] | None = None,
    ack_wait: float | None = None,
    deliver: Deliver | str | None = None,
    max_ack_pending: int | None = None,
    prefetch: int | None = None,
) -> Callable[[F], F]:
    """Handle events published on `pattern` (`events.order.*`, `events.>`).

    By default each event reaches one instance of the service (a queue group,
    like competing consumers); `broadcast=True` delivers it to every instance.
    Such core events are delivered at most once: one published while no
    instance listens, or whose handler fails, is gone.

    `durable=True` reads the events from their domain's JetStream stream
    instead: at least once, acknowledged when the handler returns,
    redelivered after `backoff` when it raises (or after `ack_wait` when its
    instance dies), and put in the dead letters after `max_deliver`
    deliveries (docs/guides/events.md). The pattern must name one domain.

    Args:
        max_concurrency: events handled at once by one instance (default 1:
            one at a time, in the order they came).
        dedupe: skip an event whose id this handler finished within the last
            `dedupe` seconds (whole seconds; marks are kept in a KV bucket the
            service's instances share).
        max_deliver, backoff, ack_wait, deliver, max_ack_pending, prefetch:
            durable handlers only; see `DurableOptions`. `deliver` is where a
            new consumer starts: "all" (default), "new", "last",
            "last_per_subject", a stream sequence, or an aware datetime.
    """
    check_event_subject(pattern, pattern=True)
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
    if dedupe is not None and (not isinstance(dedupe, int) or dedupe < 1):
        raise ValueError(f"dedupe must be a whole number of seconds >= 1, got {dedupe!r}")
    given = {
        "max_deliver": max_deliver,
        "backoff": backoff,
        "ack_wait": ack_wait,
        "deliver": deliver,
        "max_ack_pending": max_ack_pending,
        "prefetch": prefetch,
    }
    options = None
    if durable:
        check_durable_pattern(pattern)
        options = durable_options(**given)
    else:
        extra = [key for key, value in given.items() if value is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)}: options of durable handlers (add durable=True)")

    def mark(f: F) -> F:
        _require_coroutine("@event", f)
        setattr(f, _EVENT_MARK, _EventMark(pattern, broadcast, options, max_concurrency, dedupe))
        return f

    return mark


@dataclass(slots=True)
class RpcEndpoint:
    """One served method, ready to parse requests and dump results."""

    name: str
    func: Handler
    idempotent: bool
    max_concurrency: int
    description: str
    params: TypeAdapter[Any] | None
    """None when the handler takes no parameters."""
    result: TypeAdapter[Any] | None
    """None when the return type is not annotated (dumped as plain JSON)."""

    def parse(self, data: bytes) -> Any:
        """Validate a request body; raise `ServiceError` (400 or 422) if it is bad."""
        if self.params is None:
            return None
        problem = non_json_number(data)
        if problem is not None:
            raise ServiceError.of(ErrorCode.BAD_REQUEST, f"body is not valid JSON: {problem}")
        try:
            return self.params.validate_json(data)
        except ValidationError as exc:
            raise from_validation_error(exc) from None

    def dump(self, result: Any) -> bytes:
        if self.result is None:
            return to_json(result, by_alias=True)
        return self.result.dump_json(result, by_alias=True)


@dataclass(slots=True)
class EventHandler:
    """One event handler of a service."""

    name: str
    """The method's name: names the handler's consumer, stats and dead letters."""
    pattern: str
    func: Handler
    broadcast: bool
    payload: TypeAdapter[Any] | None
    durable: DurableOptions | None = None
    """How a durable handler is delivered its events (None: core events)."""
    max_concurrency: int = 1
    dedupe: int | None = None
    """Seconds within which an event id this handler finished is skipped."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Endpoints:
    rpc: dict[str, RpcEndpoint]
    events: tuple[EventHandler, ...]


def _argument_adapter(func: Handler, hints: dict[str, Any]) -> TypeAdapter[Any] | None:
    params = list(inspect.signature(func).parameters.values())[1:]  # after self
    if not params:
        return None
    if len(params) > 1:
        raise TypeError(
            f"{func.__qualname__} must take one parameters argument after self, not {len(params)}"
        )
    return TypeAdapter(hints.get(params[0].name, Any))


def collect(cls: type) -> Endpoints:
    """The endpoints declared on `cls` and its bases (overrides win)."""
    rpcs: dict[str, RpcEndpoint] = {}
    events: list[EventHandler] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, func in vars(klass).items():
            if attr in seen or not callable(func):
                continue
            rpc_mark = getattr(func, _RPC_MARK, None)
            event_mark = getattr(func, _EVENT_MARK, None)
            if rpc_mark is None and event_mark is None:
                continue
            seen.add(attr)
            try:
                hints = typing.get_type_hints(func)
            except NameError as exc:
                raise TypeError(
                    f"cannot resolve the type hints of {func.__qualname__}: {exc}"
                ) from exc
            if rpc_mark is not None:
                name = rpc_mark.name or check_method_name(attr)
                if name in rpcs:
                    raise TypeError(f"{cls.__name__} declares RPC method {name!r} twice")
                result = hints.get("return")
                doc = (inspect.getdoc(func) or "").strip().splitlines()
                rpcs[name] = RpcEndpoint(
                    name=name,
                    func=func,
                    idempotent=rpc_mark.idempotent,
                    max_concurrency=rpc_mark.max_concurrency,
                    description=rpc_mark.description or (doc[0] if doc else ""),
                    params=_argument_adapter(func, hints),
                    result=None if result is None else TypeAdapter(result),
                )
            if event_mark is not None:
                doc = (inspect.getdoc(func) or "").strip().splitlines()
                events.append(
                    EventHandler(
                        name=attr,
                        pattern=event_mark.pattern,
                        func=func,
                        broadcast=event_mark.broadcast,
                        payload=_argument_adapter(func, hints),
                        durable=event_mark.durable,
                        max_concurrency=event_mark.max_concurrency,
                        dedupe=event_mark.dedupe,
                        description=doc[0] if doc else "",
                    )
                )
    return Endpoints(rpcs, tuple(events))


_ENDPOINTS: dict[type, Endpoints] = {}


def endpoints_of(cls: type) -> Endpoints:
    """The endpoints of a class, collected once (type hints resolved at first use)."""
    endpoints = _ENDPOINTS.get(cls)
    if endpoints is None:
        endpoints = _ENDPOINTS[cls] = collect(cls)
    return endpoints


def unknown_method(service: str, method: str, known: list[str]) -> ServiceError:
    return ServiceError.of(
        ErrorCode.NOT_FOUND,
        f"{service} has no method {method!r}",
        method=method,
        methods=sorted(known),
    )


def idempotent_methods(cls: type) -> list[str]:
    """The RPC methods of `cls` declared `@rpc(idempotent=True)`, sorted."""
    return sorted(e.name for e in endpoints_of(cls).rpc.values() if e.idempotent)
