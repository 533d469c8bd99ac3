"""Running event handlers inside the service actor: core events, durable deliveries, replays.

The request server puts each event in the service's mailbox (a `CoreEvent`
from its subscriptions, a `Delivery` from the events actor, a `Replay` from
`aegis events dead replay`); `EventRunner` runs the handler and, for a
durable event, settles it with the server:

| the handler | core event | durable event |
| --- | --- | --- |
| returns | done | acknowledged (and marked, with `dedupe`) |
| calls `retry_later(d)` | (refused) | delivered again after d seconds |
| raises, deliveries < max_deliver | logged, gone | delivered again after `backoff` |
| raises at max_deliver | logged, gone | dead letter, with the error |
| payload does not validate | logged, dropped | dead letter at once (it never will) |
| its instance dies | gone | delivered again after `ack_wait` |

While a handler runs, `current_event()` gives its `EventContext`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import nats.errors
import nats.js.errors
from anyio.abc import TaskGroup
from pydantic import ValidationError
from pydantic_core import from_json

from aegis_actors._dispatch import Served, _current_request
from aegis_actors._endpoints import EventHandler
from aegis_actors._errors import AegisError, ErrorCode, ServiceError
from aegis_actors._events.context import EVENT_ID_HEADER, AckInfo, EventContext, parse_ack_subject
from aegis_actors._events.dead import (
    DELIVERIES_HEADER,
    HANDLER_HEADER,
    SEQUENCE_HEADER,
    STREAM_HEADER,
    SUBJECT_HEADER,
    store_dead_letter,
)
from aegis_actors._events.dedupe import Marks
from aegis_actors._events.flow import ACK, TERM, nak
from aegis_actors._events.messages import CoreEvent, Delivery, EventStats, Replay
from aegis_actors._events.publish import EventPublisher
from aegis_actors._instance import Instance
from aegis_actors._subjects import queue_group
from aegis_actors._telemetry.context import LOG_METHOD, LOG_TRACE_ID, incoming, new_root
from aegis_actors._telemetry.state import TELEMETRY
from aegis_actors._transport import NatsClient
from aegis_actors._wire import error_reply, non_json_number, ok_reply

if TYPE_CHECKING:
    from aegis_actors._telemetry.otel import Handling, Tracing


class EventRunner:
    """Runs the event handlers of one service (owned by its `RequestServer`)."""

    def __init__(
        self,
        service: Served,
        instance: Instance,
        handlers: tuple[EventHandler, ...],
        client: Callable[[], NatsClient],
        refusing: Callable[[], bool],
    ) -> None:
        self.service = service
        self.instance = instance
        self.handlers = {h.name: h for h in handlers}
        self._client = client
        self._refusing = refusing
        subjects = instance.subjects
        group = queue_group(instance.service_name)
        self.stats = {
            h.name: EventStats(h, subjects.event(h.pattern), "" if h.broadcast else group)
            for h in handlers
        }
        self.publisher = EventPublisher(
            client,
            subjects=subjects,
            buckets=instance.buckets,
            settings=instance.events,
            timeout=instance.kv_timeout,
        )
        self.positions: dict[str, int] = {}
        """The last stream sequence each durable handler settled (a broadcast consumer made
        again resumes after it)."""
        self.tg: TaskGroup | None = None
        self._limiters = {
            h.name: anyio.Semaphore(h.max_concurrency) for h in handlers if h.max_concurrency > 1
        }
        self._running = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._marks = Marks(
            lambda: client().jetstream(timeout=instance.kv_timeout),
            instance.buckets,
            instance.service_name,
            lambda: service.actor_log,
        )
        self._plain = {
            h.name: plain
            for h in handlers
            if h.payload is not None and (plain := _plain_json(h.payload.core_schema)) is not _TYPED
        }
        """Handlers whose payload is plain JSON (their value's type, None for any)."""

    @property
    def durable(self) -> bool:
        return any(h.durable is not None for h in self.handlers.values())

    async def wait_idle(self) -> None:
        """Return once no handler with `max_concurrency` runs."""
        await self._idle.wait()

    # -- core events -----------------------------------------------------------------

    async def serve_core(self, event: CoreEvent) -> None:
        handler = event.handler
        if self._refusing() and not handler.broadcast:
            # Delivered just before this instance stepped down; the ACTIVE one
            # handles the group's events from now on.
            self.service.actor_log.warning(
                "event dropped: instance is STANDBY", subject=event.subject
            )
            return
        data = event.data
        adapter = handler.payload
        plain = self._plain.get(handler.name, _TYPED)
        if plain is not _TYPED:
            # Any, dict[str, Any], list[Any]: parsing is all the validation there
            # is, and pydantic's parser refuses NaN itself (no scan of the body).
            try:
                payload = from_json(data, allow_inf_nan=False)
            except ValueError:
                payload = self._parse(handler, event.subject, data)
            else:
                if plain is not None and type(payload) is not plain:
                    payload = self._parse(handler, event.subject, data)
        elif adapter is not None and b"NaN" not in data and b"Infinity" not in data:
            # The adapter's own validator: its Python wrapper costs ~1 us an event.
            try:
                payload = adapter.validator.validate_json(data)
            except ValidationError:
                payload = self._parse(handler, event.subject, data)
        else:
            payload = self._parse(handler, event.subject, data)
        if payload is _INVALID:
            return
        headers = event.headers
        context = _context(
            event.subject,
            handler,
            headers,
            event_id=headers.get(EVENT_ID_HEADER) if headers else None,
        )
        if handler.dedupe is not None or handler.max_concurrency > 1 or TELEMETRY.tracing:
            await self._start(self._run_core, handler, context, payload)
            return
        started = time.perf_counter_ns()
        token = _current_request.set(context)
        # Every log line of the handler (the user's own too) carries the trace id.
        logged = LOG_TRACE_ID.set(context.trace_id), LOG_METHOD.set(handler.name)
        try:
            if adapter is None:
                await handler.func(self.service)
            else:
                await handler.func(self.service, payload)
        except Exception as exc:
            error: str | None = self._failed(handler, context, exc)
        else:
            error = None
        finally:
            LOG_METHOD.reset(logged[1])
            LOG_TRACE_ID.reset(logged[0])
            _current_request.reset(token)
        self.stats[handler.name].record(time.perf_counter_ns() - started, error)

    async def _run_core(self, handler: EventHandler, context: EventContext, payload: Any) -> None:
        started = time.perf_counter_ns()
        if handler.dedupe and context.event_id and await self._finished(handler, context):
            return
        error = await self._call(handler, context, payload)
        self.stats[handler.name].record(time.perf_counter_ns() - started, error)
        if error is None and handler.dedupe and context.event_id:
            await self._mark(handler, context)

    # -- durable events --------------------------------------------------------------

    async def serve_delivery(self, delivery: Delivery) -> None:
        binding = delivery.binding
        handler = binding.handler
        if binding.closed or binding.service_generation != self.service.actor_ref.generation:
            # From a consumer made again since (or for the service's previous
            # incarnation): the server delivers it again to the current one.
            return
        info = parse_ack_subject(delivery.reply) or AckInfo(binding.stream, "", 1, 0, 0)
        stats = self.stats[handler.name]
        stats.binding = binding
        if info.delivered > 1:
            stats.redelivered += 1
        if self._refusing() and not handler.broadcast:
            await binding.flow.settle(delivery.reply, nak(0))
            return
        options = handler.durable
        assert options is not None
        if info.delivered > options.max_deliver:
            await self._dead_letter(
                delivery,
                info,
                f"delivered {info.delivered - 1} times without an outcome: the instances "
                "holding it stopped (or sent no word for ack_wait) while handling it",
            )
            return
        payload = self._parse(handler, delivery.subject, delivery.data, delivery, info)
        if payload is _INVALID:
            await self._dead_letter(delivery, info, self._invalid)
            return
        headers = delivery.headers
        context = _context(
            delivery.subject,
            handler,
            headers,
            event_id=headers.get(EVENT_ID_HEADER) if headers else None,
            delivered=info.delivered,
            stream=info.stream,
            sequence=info.sequence,
            timestamp_ns=info.timestamp_ns,
        )
        await self._start(self._run_delivery, handler, context, payload, delivery, info)

    async def _run_delivery(
        self,
        handler: EventHandler,
        context: EventContext,
        payload: Any,
        delivery: Delivery,
        info: AckInfo,
    ) -> None:
        stats = self.stats[handler.name]
        flow = delivery.binding.flow
        if handler.dedupe and context.event_id and await self._finished(handler, context):
            await flow.settle(delivery.reply, ACK)
            return
        started = time.perf_counter_ns()
        error = await self._call(handler, context, payload)
        stats.record(time.perf_counter_ns() - started, error)
        options = handler.durable
        assert options is not None
        if error is not None:
            if info.delivered >= options.max_deliver:
                await self._dead_letter(delivery, info, error)
            else:
                stats.retried += 1
                await flow.settle(delivery.reply, nak(options.redelivery_delay(info.delivered)))
            return
        if context._retry_after is not None:
            stats.retried += 1
            await flow.settle(delivery.reply, nak(context._retry_after))
            return
        if handler.dedupe and context.event_id:
            await self._mark(handler, context)
        await flow.settle(delivery.reply, ACK)
        if info.sequence > self.positions.get(handler.name, 0):
            self.positions[handler.name] = info.sequence

    async def _dead_letter(self, delivery: Delivery, info: AckInfo, error: str) -> None:
        """Keep the event in the dead letters, then end its deliveries; if that fails, retry."""
        binding, handler = delivery.binding, delivery.binding.handler
        instance = self.instance
        subjects = instance.subjects
        try:
            await store_dead_letter(
                self._client().jetstream(timeout=instance.kv_timeout),
                instance,
                handler.name,
                delivery.subject,
                delivery.data,
                delivery.headers,
                info,
                error,
            )
        except (nats.errors.Error, AegisError, TimeoutError, OSError) as exc:
            assert handler.durable is not None
            delay = handler.durable.redelivery_delay(info.delivered)
            self.service.actor_log.error(
                "dead letter not stored: the event will be delivered again",
                handler=handler.name,
                sequence=info.sequence,
                error=repr(exc),
                retry_in=delay,
            )
            await binding.flow.settle(delivery.reply, nak(delay))
            return
        self.stats[handler.name].dead_lettered += 1
        self.service.actor_log.warning(
            "event dead-lettered",
            handler=handler.name,
            subject=subjects.event_of(delivery.subject),
            stream=info.stream,
            sequence=info.sequence,
            deliveries=info.delivered,
            error=error,
        )
        await binding.flow.settle(delivery.reply, TERM)

    # -- replays from the dead letters ------------------------------------------------

    async def serve_replay(self, replay: Replay, answer: Callable[..., Any]) -> None:
        """Run the handler a dead letter names; answer ok, or the error it raised."""
        request = replay.request
        headers = request.headers or {}
        handler = self.handlers.get(headers.get(HANDLER_HEADER, ""))
        if handler is None:
            known = sorted(h for h, e in self.handlers.items() if e.durable is not None)
            error = ServiceError.of(
                ErrorCode.NOT_FOUND,
                f"{self.instance.service_name} has no durable handler "
                f"{headers.get(HANDLER_HEADER)!r}",
                handlers=known,
            )
            await answer(request, *error_reply(error))
            return
        subject = self.instance.subjects.event(headers.get(SUBJECT_HEADER, handler.pattern))
        payload = self._parse(handler, subject, request.data)
        if payload is _INVALID:
            error = ServiceError.of(ErrorCode.VALIDATION_ERROR, self._invalid)
            await answer(request, *error_reply(error))
            return

        def number(key: str) -> int:
            value = headers.get(key, "")
            return int(value) if value.isdigit() else 0

        context = _context(
            subject,
            handler,
            headers,
            event_id=headers.get(EVENT_ID_HEADER),
            delivered=number(DELIVERIES_HEADER) + 1,
            stream=headers.get(STREAM_HEADER),
            sequence=number(SEQUENCE_HEADER),
            replayed=True,
        )
        started = time.perf_counter_ns()
        error_text = await self._call(handler, context, payload)
        self.stats[handler.name].record(time.perf_counter_ns() - started, error_text)
        if error_text is None and context._retry_after is not None:
            error_text = "the handler asked to retry later"
        if error_text is not None:
            error = ServiceError.of(
                ErrorCode.INTERNAL, f"{handler.name} failed again: {error_text}"
            )
            await answer(request, *error_reply(error))
            return
        if handler.dedupe and context.event_id:
            await self._mark(handler, context)
        await answer(request, ok_reply(None))

    # -- running a handler -----------------------------------------------------------

    _invalid = ""

    def _parse(
        self,
        handler: EventHandler,
        subject: str,
        data: bytes,
        delivery: Delivery | None = None,
        info: AckInfo | None = None,
    ) -> Any:
        """The handler's argument, or `_INVALID` (logged, reason in `_invalid`)."""
        problem = non_json_number(data)
        if problem is None and handler.payload is not None:
            try:
                return handler.payload.validator.validate_json(data)
            except ValidationError as exc:
                problem = f"invalid payload: {exc.errors(include_url=False)[0]['msg']}"
        elif problem is not None:
            problem = f"invalid payload: {problem}"
        if problem is None:
            return None
        self._invalid = problem
        self.service.actor_log.warning(
            "invalid event dropped" if delivery is None else "invalid event",
            subject=self.instance.subjects.event_of(subject),
            handler=handler.name,
            error=problem,
        )
        return _INVALID

    async def _call(self, handler: EventHandler, context: EventContext, payload: Any) -> str | None:
        """Run the handler (in its span, with tracing on); the error text if it raised."""
        tracing = TELEMETRY.tracing
        span = None if tracing is None else self._span(tracing, handler, context)
        token = _current_request.set(context)
        logged = LOG_TRACE_ID.set(context.trace_id), LOG_METHOD.set(handler.name)
        error = None
        try:
            if handler.payload is None:
                await handler.func(self.service)
            else:
                await handler.func(self.service, payload)
        except Exception as exc:
            error = self._failed(handler, context, exc)
        finally:
            LOG_METHOD.reset(logged[1])
            LOG_TRACE_ID.reset(logged[0])
            _current_request.reset(token)
            if span is not None:
                span.detach()
        if span is not None:
            span.end(None, None if error is None else error.split(":", 1)[0])
        return error

    def _span(self, tracing: Tracing, handler: EventHandler, context: EventContext) -> Handling:
        """Start the CONSUMER span of a delivery, a child of the publisher's span."""
        parent, legacy = incoming(context.headers)
        subject = self.instance.subjects.event_of(context.subject)
        service = self.service.service_name
        attributes: dict[str, Any] = {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": subject,
            "aegis.instance.id": self.instance.instance_id,
            "aegis.handler": handler.name,
        }
        if context.event_id:
            attributes["messaging.message.id"] = context.event_id
        if context.stream is not None:
            attributes["messaging.message.delivery_attempt"] = context.delivered
        if not handler.broadcast:
            attributes["messaging.consumer.group.name"] = queue_group(service)
        span = tracing.handle(service, f"process {subject}", parent, attributes, event=True)
        context.trace = span.trace
        context.trace_id = legacy or span.trace.trace_id
        return span

    def _failed(self, handler: EventHandler, context: EventContext, exc: Exception) -> str:
        """Log a handler's exception; return its text."""
        self.service.actor_log.exception(
            "event handler failed",
            handler=handler.name,
            subject=self.instance.subjects.event_of(context.subject),
            event_id=context.event_id,
            delivered=context.delivered,
            trace_id=context.trace_id,
        )
        return f"{type(exc).__name__}: {exc}"

    async def _start(self, run: Callable[..., Any], handler: EventHandler, *args: Any) -> None:
        """Run now (one at a time), or in a slot of the handler's `max_concurrency`."""
        limiter = self._limiters.get(handler.name)
        if limiter is None:
            await run(handler, *args)
            return
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        self._running += 1
        self._idle = anyio.Event()
        assert self.tg is not None
        self.tg.start_soon(self._run_limited, limiter, run, handler, *args)

    async def _run_limited(
        self, limiter: anyio.Semaphore, run: Callable[..., Any], *args: Any
    ) -> None:
        try:
            await run(*args)
        finally:
            limiter.release()
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    # -- dedupe ------------------------------------------------------------------------

    async def _finished(self, handler: EventHandler, context: EventContext) -> bool:
        assert context.event_id is not None
        finished = await self._marks.finished(handler.name, context.event_id)
        if finished:
            self.stats[handler.name].deduplicated += 1
        return finished

    async def _mark(self, handler: EventHandler, context: EventContext) -> None:
        assert context.event_id is not None
        assert handler.dedupe is not None
        await self._marks.mark(handler.name, context.event_id, handler.dedupe)


_INVALID: Any = object()
_TYPED: Any = object()


def _context(
    subject: str, handler: EventHandler, headers: Mapping[str, str] | None, **event: Any
) -> EventContext:
    """The context of an event: the publisher's trace (or a new one) and the event's facts."""
    parent, legacy = incoming(headers)
    trace = parent or new_root()
    return EventContext(
        subject, handler.name, headers, None, trace, legacy or trace.trace_id, **event
    )


def _plain_json(schema: Any) -> Any:
    """The Python type a payload schema takes as is from JSON (None: any value), or
    `_TYPED` when it validates more than JSON's own types (a model, a constraint)."""
    kind = schema.get("type")
    if kind == "any":
        return None
    if (
        kind == "dict"
        and set(schema) <= {"type", "keys_schema", "values_schema"}
        and schema.get("keys_schema", {"type": "str"})["type"] in ("str", "any")
        and schema.get("values_schema", {"type": "any"})["type"] == "any"
    ):
        return dict
    if (
        kind == "list"
        and set(schema) <= {"type", "items_schema"}
        and schema.get("items_schema", {"type": "any"})["type"] == "any"
    ):
        return list
    return _TYPED
