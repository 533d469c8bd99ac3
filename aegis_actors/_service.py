"""`ServiceActor`: business logic as RPC methods and event handlers, served over NATS.

Subclass it, name the service, and declare methods with `@rpc` and handlers
with `@event`. Each method is served on `aegis.rpc.{service}.{method}` (queue
group = the service, so instances share the load) and on
`aegis.inst.{service}.{instanceId}.{method}` (this instance only), and on any subjects
`extra_subjects()` maps to it (the management API's `aegis.mgmt.*`; under an
`extra_subjects_root()`, any other subject is a 404). Requests go through
the actor's mailbox and are handled one at a time unless a method opts into
`max_concurrency`. Bad requests, `ServiceError`s and unexpected exceptions all
become error replies (docs/reference/wire-protocol.md): the actor never
crashes on a request. The serving itself (subscriptions, routing, limits,
deadlines, replies, drain) is the `RequestServer`'s, in `_request_server`.

Example:

    class Greeting(BaseModel):
        name: str

    class Greeter(ServiceActor):
        service_name = "greeter"
        version = "1.0.0"

        @rpc
        async def greet(self, params: Greeting) -> str:
            if params.name == "nobody":
                raise ServiceError(404, "NOT_FOUND", "nobody is not here")
            await self.publish_event("events.greeter.greeted", {"name": params.name})
            return f"hello, {params.name}"

        @event("events.greeter.*")
        async def on_greeted(self, payload: dict[str, str]) -> None:
            self.actor_log.info("greeted", who=payload["name"])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Unpack

from pydantic import BaseModel

from aegis_actors._actor import Actor
from aegis_actors._configuration.binding import ConfigurationBinding
from aegis_actors._discovery.caller import CallOptions
from aegis_actors._dispatch import Request, current_request
from aegis_actors._events.messages import CoreEvent
from aegis_actors._events.publish import Published
from aegis_actors._instance import Instance
from aegis_actors._leadership.models import Leadership
from aegis_actors._models import check_version
from aegis_actors._registry.models import InstanceStatus
from aegis_actors._request_server import SERVER_MESSAGES, RequestServer, ServiceWiring
from aegis_actors._subjects import (
    check_event_subject,
    check_service_name,
    check_sticky_active_group,
    subject_matches,
)
from aegis_actors._telemetry.context import headers_for, new_root
from aegis_actors._telemetry.state import TELEMETRY
from aegis_actors._transport import NatsClient
from aegis_actors._wire import DEFAULT_MAX_REQUEST_BYTES


class ServiceActor(Actor):
    """Base class of user services: set `service_name` and `version`, declare `@rpc`s.

    Besides the `actor_*` attributes of every actor, the runtime sets two
    before `on_start`: `actor_instance` (the frozen `Instance`: ids, subjects,
    settings) and `_actor_server` (the `RequestServer` that serves it). Every
    other name that starts with `_` is the subclass's own. The properties
    `instance_id`, `settings`, `nats`, `leadership`, `instance_status` and
    `configuration` read the instance as it is now.
    """

    service_name: ClassVar[str]
    """The service's name: `^[a-z][a-z0-9-]{2,63}$`."""
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ""
    Settings: ClassVar[type[BaseModel] | None] = None
    """A model for the free-form `settings` of the config file; validated at start."""
    max_request_bytes: ClassVar[int] = DEFAULT_MAX_REQUEST_BYTES
    """Larger requests get BAD_REQUEST before any parsing."""
    drain_timeout: ClassVar[float] = 5.0
    """Seconds a graceful stop waits for in-flight calls before cancelling them."""

    sticky_active_group: ClassVar[str | None] = None
    """Run as a sticky single-active service: of the instances in this group one is
    ACTIVE and takes every call, the others are STANDBY until it stops or dies
    (a config file's `sticky_active_group` overrides it). See `leadership`."""

    published_events: ClassVar[tuple[str, ...]] = ()
    """Event subjects or patterns this service publishes (`events.order.*`): when
    given, `publish_event` refuses any other, and `aegis auth` grants exactly
    these to the service's credentials (empty: no check, and no grant)."""

    own_buckets: ClassVar[tuple[str, ...]] = ()
    """KV buckets this service keeps its data in (names without the namespace:
    open them as `self.actor_instance.buckets.named(name)`): `aegis auth`
    grants the service's credentials full use of them, and nobody else any."""

    configuration_binding: ClassVar[ConfigurationBinding | None] = None
    """The configuration this service follows (a config file's
    `[services.configuration]` overrides the names); its value is in
    `self.configuration`, its changes arrive in `on_configuration_changed`."""

    actor_instance: Instance
    """Who this instance is (set by the runtime before `on_start`)."""
    _actor_server: RequestServer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "service_name" in cls.__dict__:
            check_service_name(cls.service_name)
        if "version" in cls.__dict__:
            check_version(cls.version)
        if cls.__dict__.get("sticky_active_group") is not None:
            check_sticky_active_group(cls.sticky_active_group)  # type: ignore[arg-type]
        for pattern in cls.__dict__.get("published_events", ()):
            check_event_subject(pattern, pattern=True)

    # -- what user code reads ----------------------------------------------------

    @property
    def instance_id(self) -> str:
        """`{service_name}-{8 hex}`: this instance in the registry and in `aegis.inst.*`."""
        return self.actor_instance.instance_id

    @property
    def settings(self) -> Any:
        """The `settings` table of this service in the config file (validated by `Settings`)."""
        return self.actor_instance.settings

    @property
    def nats(self) -> NatsClient:
        """The instance's NATS connection (nats-py's client)."""
        return self._actor_server.nats

    @property
    def leadership(self) -> Leadership | None:
        """This instance's standing in its sticky-active group (None outside one).

        Current at every read, even inside a long handler: check
        `leadership.active` before a write that only the ACTIVE instance may
        make, and put `leadership.revision` (the fencing token) in it.
        """
        return self._actor_server.wiring.leadership.value

    @property
    def instance_status(self) -> InstanceStatus:
        """This instance's status as its heartbeat last decided it (ACTIVE without registration)."""
        return self._actor_server.wiring.status.value

    @property
    def configuration(self) -> Any:
        """The bound configuration's current value (None without a binding or a value).

        Changes arrive between requests, with `on_configuration_changed`.
        """
        return self._actor_server.configuration

    # -- hooks ---------------------------------------------------------------------

    async def health(self) -> bool:
        """Return False to mark the instance UNHEALTHY at its next heartbeat."""
        return True

    def extra_subjects(self) -> Mapping[str, str]:
        """More subjects to serve, each mapped to the name of one of this service's RPC methods.

        Called at start, before `on_start`; build the subjects with
        `self.actor_instance.subjects` so that they follow the namespace.
        Requests on them share the service's queue group, mailbox and error
        replies, and each appears in `$SRV.INFO` as an endpoint of its own.
        The methods stay reachable on `aegis.rpc.{service}.{method}` too.

        `aegis.mgmt.>` belongs to the `aegis-mgmt` service, which answers
        every subject under it (see `extra_subjects_root`): choose subjects
        outside it for a service of your own.

        Example:

            def extra_subjects(self) -> Mapping[str, str]:
                return {self.actor_instance.subjects.own("orders.get"): "get_order"}
        """
        return {}

    def extra_subjects_root(self) -> str | None:
        """A subject under which this service answers every request (None: no such subject).

        The extra subjects under `{root}.` are then served by one subscription
        to `{root}.>` in the service's queue group, so that a request on any
        other subject under it gets one reply, 404 NOT_FOUND naming the
        subjects there are (relative to the root), instead of NATS "no
        responders". Only the extra subjects appear in `$SRV.INFO`.
        """
        return None

    async def on_configuration_changed(self, new: Any, old: Any) -> None:
        """The bound configuration changed (`configuration_binding`): `self.configuration` is `new`.

        Called from the mailbox: in order, never two at once, between requests.
        An exception is logged; the new value stays.
        """

    async def on_leadership_changed(self, active: bool) -> None:
        """This instance became the ACTIVE one of its sticky-active group, or stopped being it.

        Called from the mailbox, ahead of queued requests: with True once the
        instance takes calls (right after start, too, if it starts ACTIVE), with
        False once it no longer does. `self.leadership` has the details. An
        exception is logged; the change stands.
        """

    async def on_message(self, message: Any) -> Any:
        """Plain actor messages (not requests or events) arrive here."""
        return await super().on_receive(message)

    # -- what user code calls ------------------------------------------------------

    async def publish_event(
        self,
        subject: str,
        payload: Any = None,
        *,
        durable: bool | None = None,
        event_id: str | None = None,
    ) -> Published:
        """Publish `payload` (a model or JSON value) on `events.{domain}.{action}`.

        A core event is sent and forgotten. A durable one (`durable=True`, or
        by default when the subject's domain has a stream) is stored in the
        domain's stream before this returns; a publish with an `event_id` the
        stream already holds (within its duplicate window, 2 minutes by
        default) is stored once, so retrying after an error is safe
        (docs/guides/events.md). The trace goes along (`traceparent`,
        `Aegis-Trace-Id`): inside a handler the request's; with tracing on,
        the publish's own PRODUCER span.

        Args:
            durable: True: store it (making the domain's stream if missing);
                False: a core event; None: durable if the domain has a stream.
            event_id: the event's id (`Nats-Msg-Id`); a new ULID by default.

        Raises:
            ValueError: a bad subject or event id, one outside `published_events`
                (when declared), or a payload that is not JSON (NaN and
                infinities included).
            StoreUnavailableError: a durable event got no acknowledgement (publish
                it again with the same `event_id`).
            EventNotStoredError: the stream refused it.
        """
        check_event_subject(subject)
        declared = self.published_events
        if declared and not any(subject_matches(p, subject) for p in declared):
            raise ValueError(
                f"{subject} is not one of {type(self).__name__}.published_events "
                f"({', '.join(declared)})"
            )
        request = current_request()
        published = self._actor_server.published
        published[subject] = published.get(subject, 0) + 1
        publish = self._actor_server.events.publisher.publish
        tracing = TELEMETRY.tracing
        if tracing is None:
            trace = new_root() if request is None else request.trace
            label = trace.trace_id if request is None else request.trace_id
            return await publish(
                subject, payload, durable=durable, event_id=event_id,
                headers=headers_for(trace, label),
            )  # fmt: skip
        sending = tracing.send(
            self.service_name,
            f"publish {subject}",
            {
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": subject,
            },
            event=True,
        )
        label = sending.trace.trace_id if request is None else request.trace_id
        try:
            done = await publish(
                subject, payload, durable=durable, event_id=event_id,
                headers=headers_for(sending.trace, label),
            )  # fmt: skip
        except BaseException as exc:
            sending.end(type(exc).__name__)
            raise
        sending.set_attribute("messaging.message.id", done.event_id)
        sending.end()
        return done

    async def call(
        self, service: str, method: str, params: Any = None, **options: Unpack[CallOptions]
    ) -> Any:
        """Call `method` of another service and return its data (docs/guides/calls.md).

        An instance is found through discovery, picked by the service's
        strategy, and called directly; one that does not answer is skipped for
        another within the same `timeout` (default: the instance's
        `discovery.call_timeout`, never past the deadline of the request being
        served). After a timeout the call is retried on another instance only
        if the method may run twice: say `idempotent=True`, or declare it
        `@rpc(idempotent=True)` in the callee (every registered instance's
        record then says so). `discovery=False` sends to the service's queue
        group. While a handler awaits a call, this actor handles nothing else
        (unless the method has `max_concurrency`), so a service must not call
        itself.

        Args:
            params: a pydantic model or any JSON value (None sends `null`).
            options: `timeout`, `idempotent`, `discovery` (see `CallOptions`).

        Raises:
            ServiceError: the method's error reply, SERVICE_UNAVAILABLE or
                DEADLINE_EXCEEDED.
            ValueError: a bad service or method name, timeout, or params that
                are not JSON.
        """
        return await self._actor_server.wiring.caller.call(service, method, params, **options)

    # -- machinery (the runtime calls these; subclasses do not) ---------------------

    def _actor_attach(self, instance: Instance, wiring: ServiceWiring) -> None:
        """Set `actor_instance` and `_actor_server`: done by the instance tree, before start."""
        self.actor_instance = instance
        self._actor_server = RequestServer(self, wiring)

    async def _actor_start(self) -> None:
        if type(self).__dict__.get("service_name") is None and not hasattr(self, "service_name"):
            raise TypeError(f"{type(self).__name__} must set service_name")
        server = self._actor_server
        await server.prepare()
        try:
            await self.on_start()
            await server.open()
        except BaseException:
            await server.abort()
            raise

    async def _actor_stop(self) -> None:
        """Stop taking calls, finish the accepted ones (within `drain_timeout`), then stop."""
        await self._actor_server.close()
        await self.on_stop()

    async def on_receive(self, message: Any) -> Any:
        if type(message) is Request:  # the hot path: one test
            await self._actor_server.dispatcher.serve(message)
            return None
        if type(message) is CoreEvent:  # the hot path of events
            await self._actor_server.events.serve_core(message)
            return None
        if type(message) in SERVER_MESSAGES:
            return await self._actor_server.receive(message)
        return await self.on_message(message)
