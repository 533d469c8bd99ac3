"""`EventsActor`: the child of an instance tree that feeds its service's durable handlers.

```
{instanceId}
├── ...
├── service     the user's ServiceActor: runs the handlers, settles each event
├── events      EventsActor: one consumer per durable handler; pulls, tells the service
└── heartbeat
```

For each durable handler it makes (or finds) the domain's stream, the
dead-letter stream and the handler's consumer, then pulls events on an inbox
of its own and tells each to the service as a `Delivery` (see `_events.flow`
for the window between the two). It keeps the consumer alive:

- a deleted consumer (the server says so on the inbox) is made again, from
  the stream sequence after the last one the service settled (its ack floor);
- a silent pull (no heartbeat for two intervals: the server restarted, the
  connection came back) is checked, and the consumer made again if gone;
- the service restarted: broadcast consumers start over (a handler that
  rebuilds state from the stream replays it), shared ones are bound anew;
- while the service holds events, the server hears every `ack_wait / 2`
  that they are in progress, so only a dead instance's events go elsewhere;
- a STANDBY service (sticky-active) pulls nothing for its shared consumers.

Failures to reach JetStream are retried with backoff: the instance keeps
serving its RPCs meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import nats.js.errors

from aegis_actors._actor import Actor
from aegis_actors._backoff import Backoff
from aegis_actors._cell import Cell, Readable
from aegis_actors._connection import Connection, ConnectionChanged, WatchConnection
from aegis_actors._endpoints import EventHandler
from aegis_actors._errors import AegisError, ConfigError
from aegis_actors._events.flow import (
    IDLE_HEARTBEAT,
    IN_PROGRESS,
    Binding,
    ConsumerFacts,
    Flow,
)
from aegis_actors._events.messages import Delivery, EventPositions
from aegis_actors._events.streams import (
    ConsumerSpec,
    consumer_name,
    delete_consumer,
    ensure_consumer,
    ensure_dead_letter_stream,
    ensure_event_stream,
    is_consumer_gone,
)
from aegis_actors._instance import Instance
from aegis_actors._ref import ActorRef
from aegis_actors._subjects import consumer_next, event_domain
from aegis_actors._transport import NATS_ERRORS, Msg, Subscription, close_subscriptions

#: Seconds between refreshes of a consumer's counts (`$SRV.STATS`).
FACTS_EVERY: Final = 5.0
#: Pull silent for this many heartbeats: the pull requests are lost, ask again.
MISSED_HEARTBEATS: Final = 2
_STATUS: Final = "Status"
_DESCRIPTION: Final = "Description"
_PENDING: Final = "Nats-Pending-Messages"


@dataclass(frozen=True, slots=True)
class ServiceStarted:
    """Told by the service when it (re)starts while the events actor runs."""


@dataclass(frozen=True, slots=True)
class ServingChanged:
    """Told by the service when it starts or stops taking events (sticky-active)."""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Reopen:
    handler: str
    reason: str
    binding: Binding | None = None
    """Only if this binding is still the current one (None: whatever the binding)."""


@dataclass(eq=False)
class _Consumer:
    """What the actor holds for one durable handler."""

    handler: EventHandler
    stream: str | None = None
    binding: Binding | None = None
    sub: Subscription | None = None
    failures: int = 0
    retry: object | None = None
    facts_at: float = 0.0
    spec: ConsumerSpec | None = field(default=None)


class EventsActor(Actor):
    """Pulls the events of a service's durable handlers and tells them to the service."""

    def __init__(
        self,
        instance: Instance,
        handlers: tuple[EventHandler, ...],
        *,
        connection: Connection,
        service: Readable[ActorRef | None],
        serving: Readable[bool],
        events: Cell[ActorRef | None],
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self.instance = instance
        self.connection = connection
        self.service = service
        self.serving = serving
        self.events = events
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.consumers = {h.name: _Consumer(h) for h in handlers if h.durable is not None}
        ack_waits = [h.durable.ack_wait for h in handlers if h.durable is not None]
        # Often enough to say "in progress" within every ack_wait.
        self.tick = min([IDLE_HEARTBEAT, *(w / 3 for w in ack_waits)])
        self._dead_letters_ready = False

    @property
    def service_ref(self) -> ActorRef:
        ref = self.service.value
        if ref is None:
            raise RuntimeError("the events actor starts after the service")
        return ref

    # -- lifecycle ------------------------------------------------------------------

    async def on_start(self) -> None:
        self.events.set(self.actor_ref)
        if self.connection.actor is not None:
            await self.connection.actor.tell(WatchConnection(self.actor_ref))
        for consumer in self.consumers.values():
            await self._open(consumer, "start", fresh=consumer.handler.broadcast)
        self.actor_timer(self.tick, _Tick())

    async def on_stop(self) -> None:
        self.events.set(None)
        for consumer in self.consumers.values():
            binding = consumer.binding
            if binding is None:
                continue
            # Pull nothing more; what the service holds it still handles and
            # settles while it drains (it stops after us).
            binding.flow.closed = True
            if consumer.sub is not None:
                await close_subscriptions([consumer.sub])
                consumer.sub = None
            if consumer.handler.broadcast:
                binding.close()
                await self._delete(binding)

    async def _delete(self, binding: Binding) -> None:
        js = self.connection.client.jetstream(timeout=self.instance.kv_timeout)
        with anyio.move_on_after(self.instance.kv_timeout):
            try:
                await delete_consumer(js, binding.stream, binding.consumer)
            except NATS_ERRORS as exc:
                # The server drops it once idle (`BROADCAST_IDLE`).
                self.actor_log.info(
                    "broadcast consumer left to expire", consumer=binding.consumer, error=repr(exc)
                )

    # -- messages -------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            await self._on_tick()
            self.actor_timer(self.tick, _Tick())
        elif isinstance(message, _Retry):
            consumer = self.consumers[message.handler]
            if consumer.retry is message.token:
                await self._open(consumer, "retry", fresh=message.fresh)
        elif isinstance(message, _Reopen):
            consumer = self.consumers[message.handler]
            if message.binding is None or message.binding is consumer.binding:
                await self._open(consumer, message.reason)
        elif isinstance(message, ConnectionChanged):
            if message.connected:
                for consumer in self.consumers.values():
                    await self._check(consumer, "reconnected")
        elif isinstance(message, ServiceStarted):
            for consumer in self.consumers.values():
                await self._open(consumer, "service restarted", fresh=consumer.handler.broadcast)
        elif isinstance(message, ServingChanged):
            for consumer in self.consumers.values():
                await self._follow_serving(consumer)
        else:
            return await super().on_receive(message)
        return None

    # -- opening a consumer ------------------------------------------------------------

    async def _open(self, consumer: _Consumer, reason: str, *, fresh: bool = False) -> None:
        """Make or check the streams and the consumer, then pull on a new inbox."""
        consumer.retry = None
        handler = consumer.handler
        options = handler.durable
        assert options is not None
        instance = self.instance
        client = self.connection.client
        js = client.jetstream(timeout=instance.kv_timeout)
        try:
            if consumer.stream is None:
                consumer.stream = await ensure_event_stream(
                    js,
                    event_domain(handler.pattern),
                    subjects=instance.subjects,
                    buckets=instance.buckets,
                    settings=instance.events,
                )
            if not self._dead_letters_ready:
                await ensure_dead_letter_stream(
                    js,
                    subjects=instance.subjects,
                    buckets=instance.buckets,
                    settings=instance.events,
                )
                self._dead_letters_ready = True
            spec = consumer.spec = ConsumerSpec(
                stream=consumer.stream,
                name=consumer_name(
                    instance.service_name,
                    handler.name,
                    instance.instance_id if handler.broadcast else None,
                ),
                filter_subject=instance.subjects.event(handler.pattern),
                options=options,
                broadcast=handler.broadcast,
                description=f"aegis: {instance.service_name}.{handler.name}",
            )
            start = None if fresh else await self._resume_after(consumer)
            await ensure_consumer(js, spec, start=start, fresh=fresh)
        except ConfigError:
            raise
        except (AegisError, *NATS_ERRORS, TimeoutError) as exc:
            consumer.failures += 1
            delay = self.backoff.delay(min(consumer.failures - 1, 30))
            self.actor_log.warning(
                "event consumer not ready: retrying",
                handler=handler.name,
                reason=reason,
                error=str(exc) or repr(exc),
                failures=consumer.failures,
                retry_in=round(delay, 2),
            )
            token = consumer.retry = object()
            self.actor_timer(delay, _Retry(handler.name, token, fresh))
            return
        await self._bind(consumer, spec)
        if consumer.failures or reason not in ("start",):
            self.actor_log.info("event consumer ready", handler=handler.name, reason=reason)
        consumer.failures = 0

    async def _resume_after(self, consumer: _Consumer) -> int | None:
        """Where a consumer made again starts: after what was settled (None: `deliver`)."""
        if consumer.handler.broadcast:
            positions = await self.service_ref.ask_priority(
                EventPositions(), timeout=self.instance.kv_timeout
            )
            last = positions.get(consumer.handler.name)
        else:
            binding = consumer.binding
            last = binding.facts.ack_floor if binding is not None else 0
        return last + 1 if last else None

    async def _bind(self, consumer: _Consumer, spec: ConsumerSpec) -> None:
        client = self.connection.client
        old = consumer.binding
        if old is not None:
            old.close()
        if consumer.sub is not None:
            await close_subscriptions([consumer.sub])
            consumer.sub = None
        options = consumer.handler.durable
        assert options is not None
        flow = Flow(
            client, consumer_next(spec.stream, spec.name), client.new_inbox(), options.prefetch
        )
        binding = Binding(
            consumer.handler, spec.stream, spec.name, flow, self.service_ref.generation
        )
        if old is not None:
            binding.facts = old.facts
        consumer.binding = binding
        consumer.sub = await client.subscribe(
            flow.inbox, cb=self._receiver(binding), pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        await self._follow_serving(consumer)

    async def _follow_serving(self, consumer: _Consumer) -> None:
        binding = consumer.binding
        if binding is None:
            return
        flow = binding.flow
        flow.paused = not consumer.handler.broadcast and not self.serving.value
        await flow.top_up()

    def _receiver(self, binding: Binding) -> Any:
        """The inbox's callback: events to the service, the server's statuses to the flow."""
        flow = binding.flow
        service = self.service_ref
        me = self.actor_ref
        name = binding.handler.name
        monotonic = time.monotonic

        async def on_message(msg: Msg) -> None:
            now = flow.last_seen = monotonic()
            reply = msg.reply
            if reply:
                if flow.requested:
                    flow.requested -= 1
                flow.held[reply] = now
                await service.tell(Delivery(msg.subject, reply, msg.data, msg.headers, binding))
                return
            headers = msg.headers or {}
            status = headers.get(_STATUS)
            if status == "100":
                return  # idle heartbeat: the pull is alive
            pending = headers.get(_PENDING, "")
            flow.expired(int(pending) if pending.isdigit() else None)
            if status == "408":
                await flow.top_up()  # a request expired: ask again
            elif status == "409" and "deleted" in headers.get(_DESCRIPTION, "").lower():
                me.send_system(_Reopen(name, "consumer deleted", binding))
            # Other statuses (409 leadership change, max waiting, 503): the tick asks again.

        return on_message

    # -- the tick ----------------------------------------------------------------------

    async def _on_tick(self) -> None:
        now = time.monotonic()
        for consumer in self.consumers.values():
            binding = consumer.binding
            if binding is None or binding.closed:
                continue
            flow = binding.flow
            options = consumer.handler.durable
            assert options is not None
            half = options.ack_wait / 2
            for reply, told in list(flow.held.items()):
                if now - told >= half:
                    flow.held[reply] = now
                    await flow.client.publish(reply, IN_PROGRESS)
            silent = now - flow.last_seen > MISSED_HEARTBEATS * IDLE_HEARTBEAT + self.tick
            if flow.requested and silent:
                await self._check(consumer, f"silent for {now - flow.last_seen:.1f} s")
            elif now - consumer.facts_at >= FACTS_EVERY:
                await self._refresh(consumer)
            if not flow.requested:
                await flow.top_up()

    async def _refresh(self, consumer: _Consumer) -> None:
        binding = consumer.binding
        assert binding is not None
        consumer.facts_at = time.monotonic()
        js = self.connection.client.jetstream(timeout=self.instance.kv_timeout)
        try:
            info = await js.consumer_info(binding.stream, binding.consumer)
        except nats.js.errors.NotFoundError:
            await self._open(consumer, "consumer gone")
            return
        except (*NATS_ERRORS, TimeoutError):
            return  # counts stay as they were; the pull's own checks handle outages
        binding.facts = ConsumerFacts(
            pending=int(info.num_pending or 0),
            ack_pending=int(info.num_ack_pending or 0),
            redelivered=int(info.num_redelivered or 0),
            ack_floor=int(info.ack_floor.stream_seq) if info.ack_floor else 0,
        )

    async def _check(self, consumer: _Consumer, reason: str) -> None:
        """The pull went quiet: make sure the consumer exists, then ask again."""
        binding = consumer.binding
        if binding is None:
            if consumer.retry is None:
                await self._open(consumer, reason)
            return
        js = self.connection.client.jetstream(timeout=self.instance.kv_timeout)
        try:
            await js.consumer_info(binding.stream, binding.consumer)
        except (*NATS_ERRORS, TimeoutError) as exc:
            if is_consumer_gone(exc):
                await self._open(consumer, "consumer gone")
            else:
                binding.flow.last_seen = time.monotonic()  # checked again after the silence
            return
        binding.flow.last_seen = time.monotonic()
        binding.flow.expired(None)
        await binding.flow.top_up()


@dataclass(frozen=True, slots=True)
class _Retry:
    handler: str
    token: object
    fresh: bool
