"""`RequestServer`: serves one service instance over NATS; the `ServiceActor` owns it.

It is the service's one machinery attribute (`_actor_server`). It
subscribes to the instance's subjects and puts every message it gets in the
service's mailbox as a `Request` (or an event); `ServiceActor.on_receive`
hands each request to its `Dispatcher` (`_dispatch`), the request path:

```
subscription --Request--> mailbox --> ServiceActor.on_receive --> Dispatcher.serve
```

Besides, the server answers `$SRV.PING|INFO|STATS` (`_micro`), dispatches
events to their handlers, follows the instance's leadership (a STANDBY does
not subscribe to requests, and refuses those that still reach it), delivers
configuration changes, answers the heartbeat's health query, and drains on
a graceful stop.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from aegis_actors._actor import serve_until
from aegis_actors._cell import Cell, Readable
from aegis_actors._configuration.binding import BoundValue, ConfigurationChanged
from aegis_actors._connection import Connection, barrier
from aegis_actors._discovery.caller import Caller
from aegis_actors._dispatch import (
    Dispatcher,
    Request,
    Served,
    Unrouted,
)
from aegis_actors._endpoints import EventHandler, endpoints_of
from aegis_actors._errors import MailboxFullError
from aegis_actors._events.consumer import ServiceStarted, ServingChanged
from aegis_actors._events.messages import CoreEvent, Delivery, EventPositions, Replay
from aegis_actors._events.runner import EventRunner
from aegis_actors._instance import Instance
from aegis_actors._leadership.models import Leadership, LeadershipChanged
from aegis_actors._micro import MicroResponder
from aegis_actors._ref import ActorRef
from aegis_actors._registry.heartbeat import BeatNow, HealthQuery
from aegis_actors._registry.models import InstanceStatus
from aegis_actors._subjects import matcher, queue_group
from aegis_actors._telemetry import tracked
from aegis_actors._transport import Msg, NatsClient, Subscription, close_subscriptions

#: Messages the NATS client may hold for a subscription while the mailbox is
#: full; past it the client drops them (slow consumer) instead of growing.
PENDING_MSGS_LIMIT: Final = 65_536
PENDING_BYTES_LIMIT: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServiceWiring:
    """What the instance tree hands its service: identity, connection, caller, and cells.

    The server writes `serving` and `service` (and nothing else); the
    leadership actor writes `leadership`, the heartbeat `status` and
    `heartbeat`, the configuration actor `configuration`.
    """

    instance: Instance
    connection: Connection
    caller: Caller
    leadership: Readable[Leadership | None]
    status: Readable[InstanceStatus]
    configuration: Readable[BoundValue]
    heartbeat: Readable[ActorRef | None]
    serving: Cell[bool]
    """True while the service takes requests (False for a STANDBY, until it has
    subscribed to its request subjects as the ACTIVE instance)."""
    service: Cell[ActorRef | None]
    """The service's ref while it runs (siblings tell it changes, ask its health)."""
    events: Readable[ActorRef | None]
    """The events actor's ref while it runs (services with durable handlers)."""


#: What `ServiceActor.on_receive` hands to `RequestServer.receive` (besides `Request`).
SERVER_MESSAGES: Final = frozenset(
    {
        CoreEvent,
        Delivery,
        Replay,
        EventPositions,
        Unrouted,
        HealthQuery,
        ConfigurationChanged,
        LeadershipChanged,
    }
)


class RequestServer:
    """Subscriptions, routing, limits, deadlines, replies, standby and drain of one service."""

    def __init__(self, service: Served, wiring: ServiceWiring) -> None:
        self.service = service
        self.wiring = wiring
        self.instance = wiring.instance
        self.configuration: Any = None
        """The bound configuration's value as last delivered to the service."""
        self.endpoints = endpoints_of(type(service))
        # Broadcast events reach every instance; requests and queue-group events
        # only one that serves (in a sticky-active group: the ACTIVE one).
        self._subs: list[Subscription] = []
        self._serving_subs: list[Subscription] = []
        # A standby refuses the requests that still reach it (see `leadership`).
        self._told_active = False
        self._leadership: Leadership | None = None
        self.dispatcher = Dispatcher(service, self.endpoints)
        """The request path (`ServiceActor.on_receive` hands it every `Request`)."""
        self.events = EventRunner(
            service,
            self.instance,
            self.endpoints.events,
            lambda: wiring.connection.client,
            lambda: self.dispatcher.refusing is not None,
        )
        """Runs the event handlers, and publishes the service's events."""
        self._micro: MicroResponder | None = None
        self._seen = BoundValue()
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self.published: dict[str, int] = {}
        """Events published by the service, by subject (`/metrics`)."""
        self.leadership_changes = 0
        """Times the instance became ACTIVE or stopped being it (`/metrics`)."""

    @property
    def nats(self) -> NatsClient:
        return self.wiring.connection.client

    # -- starting and stopping -------------------------------------------------------

    async def prepare(self) -> None:
        """Build routes, limits and `$SRV` answers; read the configuration (before `on_start`)."""
        service, instance, dispatcher = self.service, self.instance, self.dispatcher
        dispatcher.configure(
            instance.subjects, queue_group(service.service_name), instance.instance_id
        )
        caller = self.wiring.caller
        caller.owner, caller.instance_id = service.service_name, instance.instance_id
        tracked.SERVERS[instance.instance_id] = self
        status = self.wiring.status
        self._micro = MicroResponder(
            name=service.service_name,
            instance_id=instance.instance_id,
            version=instance.version,
            description=service.description or (type(service).__doc__ or "").strip().split("\n")[0],
            endpoints=[
                *dispatcher.stats.values(),
                *(r.stats for r in dispatcher.routes.values()),
                *self.events.stats.values(),
            ],
            metadata=lambda: {
                "status": status.value.value,
                "namespace": instance.subjects.namespace,
            },
        )
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        dispatcher.tg = self.events.tg = self._tg
        # The bound configuration, read by the configuration actor that started first.
        self._seen = self.wiring.configuration.value
        self.configuration = self._seen.value
        leadership = self._leadership = self.wiring.leadership.value
        if not (leadership is None or leadership.active):
            dispatcher.standby(leadership.group, instance.instance_id)

    async def open(self) -> None:
        """Subscribe and answer `$SRV` (after `on_start`); ready when it returns.

        Ready means the server has our subscriptions, so a call made right
        after start cannot miss them.
        """
        assert self._micro is not None
        wiring, ref = self.wiring, self.service.actor_ref
        self.dispatcher.nats = self.nats
        serving = self.dispatcher.refusing is None
        await self._subscribe(broadcasts=True, requests=serving)
        await self._micro.start(self.nats)
        await barrier(self.nats, timeout=self.instance.kv_timeout * 5)
        wiring.serving.set(serving)
        wiring.service.set(ref)
        current = wiring.leadership.value
        if current is not None and (current.active or current != self._leadership):
            # For on_leadership_changed; or it changed while we started, before
            # the leadership actor could tell us.
            ref.send_system(LeadershipChanged(current))
        now = wiring.configuration.value
        if now.revision != self._seen.revision:
            # Changed while we started, before the configuration actor could tell us.
            ref.send_system(ConfigurationChanged(now.value, self.configuration, now.revision))
        events = wiring.events.value
        if events is not None:
            # The service restarted under a running events actor: it binds its
            # consumers to this incarnation (broadcast ones start over).
            events.send_system(ServiceStarted())

    def _untrack(self) -> None:
        """Leave `/metrics` (a restarted service's new server may have replaced us)."""
        if tracked.SERVERS.get(self.instance.instance_id) is self:
            del tracked.SERVERS[self.instance.instance_id]

    async def abort(self) -> None:
        """Undo `prepare` and `open` after a failed start."""
        self._untrack()
        await close_subscriptions(self._take_subscriptions())
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        await self._stack.aclose()

    async def close(self) -> None:
        """Stop taking calls, finish the accepted ones (within `drain_timeout`), then stop."""
        wiring, service = self.wiring, self.service
        wiring.service.set(None)
        wiring.serving.set(False)
        self._untrack()
        try:
            if self._micro is not None:
                await self._micro.stop()
            with anyio.move_on_after(service.drain_timeout) as scope:
                await self._drain()
                await self.dispatcher.wait_idle()
                await self.events.wait_idle()
            if scope.cancelled_caught:
                service.actor_log.warning(
                    "drain timed out, cancelling in-flight calls",
                    timeout=service.drain_timeout,
                    left=service.actor_ref.mailbox_statistics().queued + self.dispatcher.running,
                )
                await close_subscriptions(self._take_subscriptions())
        finally:
            # Always leave the task group entered in `prepare`, or the cancel
            # scopes of the actor's task would no longer nest.
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
            await self._stack.aclose()

    async def _subscribe(self, *, broadcasts: bool, requests: bool) -> None:
        """Subscribe to broadcast events, and (`requests`) to requests and queue-group events."""
        client, subjects, ref = self.nats, self.instance.subjects, self.service.actor_ref
        name = self.service.service_name

        async def subscribe(into: list[Subscription], subject: str, queue: str, cb: Any) -> None:
            sub = await client.subscribe(
                subject,
                queue=queue,
                cb=cb,
                pending_msgs_limit=PENDING_MSGS_LIMIT,
                pending_bytes_limit=PENDING_BYTES_LIMIT,
            )
            into.append(sub)

        log = self.service.actor_log

        # A JetStream push consumer delivers to any subject its creator names
        # (anyone who may read a bucket may create one), with the stream's
        # subject on the message: only what was published on a subject we
        # subscribed to is a request or an event (docs/operations/securing.md).
        def dropped(msg: Msg, subscription: str) -> None:
            log.warning(
                "message dropped: not on a subscribed subject",
                subject=msg.subject,
                subscription=subscription,
            )

        def on_request_to(subscription: str) -> Any:
            accepts = matcher(subscription)

            async def on_request(msg: Msg) -> None:
                if accepts(msg.subject):
                    await ref.tell(Request(msg.subject, msg.reply, msg.data, msg.headers))
                else:
                    dropped(msg, subscription)

            return on_request

        routes, root = self.dispatcher.routes, self.dispatcher.root

        def on_rooted_to(subscription: str) -> Any:
            accepts = matcher(subscription)

            async def on_rooted(msg: Msg) -> None:
                if not accepts(msg.subject):
                    dropped(msg, subscription)
                    return
                request = Request(msg.subject, msg.reply, msg.data, msg.headers)
                await ref.tell(request if msg.subject in routes else Unrouted(request))

            return on_rooted

        group = queue_group(name)
        if requests:
            serving = self._serving_subs
            rpc = subjects.rpc_all(name)
            await subscribe(serving, rpc, group, on_request_to(rpc))
            own = subjects.instance_all(self.instance.instance_id)
            await subscribe(serving, own, "", on_request_to(own))
            for subject in routes:
                if root is None or not subject.startswith(root):
                    await subscribe(serving, subject, group, on_request_to(subject))
            if root is not None:
                # One subscription for the root's subjects, known or not: NATS
                # gives every matching subscription a copy, so exact ones beside
                # it would answer a known subject twice.
                await subscribe(serving, f"{root}>", group, on_rooted_to(f"{root}>"))
            if self.events.durable:
                replays = subjects.event_replay(name)
                accepts_replay = matcher(replays)

                async def on_replay(msg: Msg) -> None:
                    if accepts_replay(msg.subject):
                        request = Request(msg.subject, msg.reply, msg.data, msg.headers)
                        await ref.tell(Replay(request))
                    else:
                        dropped(msg, replays)

                await subscribe(serving, replays, group, on_replay)
        # Durable handlers get their events from the events actor (`_events.consumer`).
        for handler in self.endpoints.events:
            if handler.durable is not None:
                continue
            if not (broadcasts if handler.broadcast else requests):
                continue
            pattern = subjects.event(handler.pattern)
            accepts = matcher(pattern)

            def on_event(handler: EventHandler, accepts: Any) -> Any:
                async def tell(msg: Msg) -> None:
                    if not accepts(msg.subject):
                        dropped(msg, handler.pattern)
                        return
                    event = CoreEvent(msg.subject, msg.data, msg.headers, handler)
                    try:
                        ref.tell_nowait(event)  # no coroutine while there is room
                    except MailboxFullError:
                        await ref.tell(event)

                return tell

            await subscribe(
                self._subs if handler.broadcast else self._serving_subs,
                pattern,
                "" if handler.broadcast else group,
                on_event(handler, accepts),
            )

    def _take_subscriptions(self) -> list[Subscription]:
        subs = [*self._serving_subs, *self._subs]
        self._serving_subs, self._subs = [], []
        return subs

    async def _drain(self) -> None:
        """Unsubscribe (the server stops routing to us) while serving what already came."""
        subs = self._take_subscriptions()
        delivered = anyio.Event()
        ref = self.service.actor_ref

        async def drain_subscriptions() -> None:
            try:
                # A closed connection fails these: nothing more will come.
                await close_subscriptions(subs, drain=True)
            finally:
                delivered.set()
                ref.mailbox.wake()

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain_subscriptions)
            await serve_until(ref, self.service.on_receive, delivered)

    # -- what the mailbox brings besides requests --------------------------------------

    async def receive(self, message: Any) -> Any:
        """Handle one of `SERVER_MESSAGES`."""
        kind = type(message)
        if kind is CoreEvent:
            await self.events.serve_core(message)
        elif kind is Delivery:
            await self.events.serve_delivery(message)
        elif kind is Replay:
            await self.events.serve_replay(message, self.dispatcher.reply)
        elif kind is EventPositions:
            return dict(self.events.positions)
        elif kind is Unrouted:
            await self.dispatcher.serve_unrouted(message.request)
        elif kind is HealthQuery:
            return await self._check_health()
        elif kind is ConfigurationChanged:
            await self._config_changed(message)
        elif kind is LeadershipChanged:
            await self._leadership_changed(message.leadership)
        return None

    async def _leadership_changed(self, leadership: Leadership) -> None:
        """Take requests only while ACTIVE, then say so to the heartbeat and the hook."""
        wiring, service = self.wiring, self.service
        self._leadership = leadership
        serving = wiring.serving
        if leadership.active and not serving.value:
            await self._subscribe(broadcasts=False, requests=True)
            # The server has our subscriptions before the registry says ACTIVE,
            # so a caller that reads ACTIVE cannot find nobody subscribed.
            await barrier(self.nats, timeout=self.instance.kv_timeout * 5)
            serving.set(True)
            self.dispatcher.standby(None, self.instance.instance_id)
            heartbeat = wiring.heartbeat.value
            if heartbeat is not None:
                heartbeat.send_system(BeatNow())
            self._tell_events(ServingChanged())
        elif not leadership.active and serving.value:
            serving.set(False)
            self.dispatcher.standby(leadership.group, self.instance.instance_id)
            subs, self._serving_subs = self._serving_subs, []
            # Drained in the background: what NATS already delivered reaches the
            # mailbox (and is refused there) instead of timing out at the caller.
            assert self._tg is not None
            self._tg.start_soon(partial(close_subscriptions, subs, drain=True))
            self._tell_events(ServingChanged())
        if leadership.active == self._told_active:
            return
        self._told_active = leadership.active
        self.leadership_changes += 1
        service.actor_log.info(
            "leadership changed", active=leadership.active, revision=leadership.revision
        )
        try:
            await service.on_leadership_changed(leadership.active)
        except Exception:
            service.actor_log.exception("on_leadership_changed failed", active=leadership.active)

    async def _config_changed(self, change: ConfigurationChanged) -> None:
        self.configuration = change.new
        try:
            await self.service.on_configuration_changed(change.new, change.old)
        except Exception:
            self.service.actor_log.exception(
                "on_configuration_changed failed", revision=change.revision
            )

    async def _check_health(self) -> bool:
        try:
            return bool(await self.service.health())
        except Exception:
            self.service.actor_log.exception("health hook failed; reporting unhealthy")
            return False

    def _tell_events(self, message: Any) -> None:
        events = self.wiring.events.value
        if events is not None:
            events.send_system(message)
