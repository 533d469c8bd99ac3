"""One service instance as a supervised actor tree (docs/guides/services.md).

```
{instanceId}  InstanceSupervisor (one_for_one, auto_shutdown=any_significant)
├── connection            ConnectionActor  temporary, significant: its loss rebuilds the tree
├── kv-watch              KVWatchActor     watches the registry (discovery mode `watch`)
├── discovery             DiscoveryCacheActor  the cache `call()` reads (unless discovery is off)
├── config-watch          KVWatchActor     watches configurations (if the service follows one)
├── config                ConfigurationActor  validates its changes and tells the service
├── leadership-watch      KVWatchActor     watches the group's leadership key (sticky-active only)
├── leadership            LeadershipActor  keeps the instance ACTIVE or STANDBY in its group
├── service               the user's ServiceActor
├── events                EventsActor      pulls durable events for the service (if it has any)
└── heartbeat             HeartbeatActor   (unless registration is off)
```

Children start in this order and stop in reverse, which gives the graceful
stop an instance owes its callers: the heartbeat deletes the registry key first, then
the service stops taking calls and drains, then (in a sticky-active group)
the leadership key is released for a standby, then the connection drains.
The tree is one-for-one, so a crashed heartbeat restarts alone, unnoticed by
the service; but every actor here shares the connection, so the connection
is a significant child: if it dies, the whole instance restarts with a new
one (OTP's auto_shutdown), rather than leaving siblings on a dead client.

Siblings tell each other what changed by messages (`LeadershipChanged`,
`ConfigurationChanged`, `BeatNow`, `HealthQuery`); what must be current at every
read lives in a `Cell` with one writer, made here for each tree:

| fact | writer | readers |
| --- | --- | --- |
| `connection` (client, ref) | connection actor | every other child |
| `leadership` | leadership actor | service, heartbeat |
| `configuration` (value, revision) | configuration actor | service (at start) |
| `serving`, `service` (its ref) | service | heartbeat; leadership, config, heartbeat |
| `status`, `heartbeat` (its ref) | heartbeat | service; service, leadership |
| `events` (its ref) | events | service |

The instance's identity (`Instance`) is frozen; the service is handed its
`Caller`, never looks it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from aegis_actors._actor import Actor
from aegis_actors._buckets import Buckets
from aegis_actors._cell import Cell
from aegis_actors._child_spec import AutoShutdown, ChildSpec
from aegis_actors._configuration.binding import BoundValue, ConfigurationBinding
from aegis_actors._configuration.live import WATCHED_KEYS, ConfigurationActor
from aegis_actors._configuration.records import configuration_bucket_spec
from aegis_actors._connection import Connection, connection_child
from aegis_actors._discovery.tree import discovery_wiring
from aegis_actors._endpoints import endpoints_of, idempotent_methods
from aegis_actors._events.consumer import EventsActor
from aegis_actors._instance import Instance
from aegis_actors._leadership.models import Leadership
from aegis_actors._leadership.tree import leadership_children
from aegis_actors._ref import ActorRef
from aegis_actors._registry.heartbeat import HeartbeatActor
from aegis_actors._registry.models import (
    IDEMPOTENT_METHODS,
    BoundConfiguration,
    InstanceStatus,
    new_instance_id,
)
from aegis_actors._request_server import ServiceWiring
from aegis_actors._service import ServiceActor
from aegis_actors._settings import InstanceSettings
from aegis_actors._subjects import Subjects
from aegis_actors._supervisor import Supervisor
from aegis_actors._system import ActorSystem
from aegis_actors._watch import WatchTopic, watch_child


def _service_settings(service_cls: type[ServiceActor], raw: dict[str, Any]) -> Any:
    model = service_cls.Settings
    return model.model_validate(raw) if model is not None else dict(raw)


@dataclass(frozen=True, slots=True)
class InstancePlan:
    """Everything needed to (re)build one instance tree; made once, up front."""

    service_cls: type[ServiceActor]
    settings: InstanceSettings
    instance_id: str
    service_settings: Any

    @property
    def version(self) -> str:
        return self.settings.version or self.service_cls.version

    @property
    def configuration_binding(self) -> ConfigurationBinding | None:
        """The class's binding, with the names the settings give, if any."""
        declared = self.service_cls.configuration_binding
        names = self.settings.configuration
        if names is None:
            return declared
        model = declared.model if declared is not None else None
        return ConfigurationBinding(names.application, names.name, model)

    @property
    def sticky_active_group(self) -> str | None:
        """The settings' group, else the class's (None: not a sticky-active service)."""
        return self.settings.sticky_active_group or self.service_cls.sticky_active_group

    @property
    def metadata(self) -> dict[str, Any]:
        """What the registry record's `metadata` holds besides host and pid.

        The settings' facts, and the methods the class declares idempotent,
        which callers then retry on another instance after a timeout.
        """
        idempotent = idempotent_methods(self.service_cls)
        return {
            **self.settings.metadata,
            **({IDEMPOTENT_METHODS: idempotent} if idempotent else {}),
        }

    @property
    def instance(self) -> Instance:
        """Who the instance is: the same for every incarnation of its tree."""
        s = self.settings
        binding = self.configuration_binding
        return Instance(
            service_name=self.service_cls.service_name,
            instance_id=self.instance_id,
            version=self.version,
            subjects=Subjects(s.namespace),
            buckets=Buckets(s.namespace),
            settings=self.service_settings,
            metadata=self.metadata,
            sticky_active_group=self.sticky_active_group,
            kv_timeout=s.kv_timeout,
            events=s.events,
            bound_configuration=(
                None
                if binding is None
                else BoundConfiguration(application=binding.application, name=binding.name)
            ),
        )


def plan_instance(
    service_cls: type[ServiceActor],
    settings: InstanceSettings | None = None,
    *,
    instance_id: str | None = None,
) -> InstancePlan:
    """Validate everything about an instance before anything starts.

    Raises:
        pydantic.ValidationError: the service's `settings` do not fit its `Settings`.
        TypeError / ValueError: the class is not a usable ServiceActor.
    """
    if not (isinstance(service_cls, type) and issubclass(service_cls, ServiceActor)):
        raise TypeError(f"{service_cls!r} is not a ServiceActor subclass")
    if not hasattr(service_cls, "service_name"):
        raise TypeError(f"{service_cls.__name__} must set service_name")
    settings = settings or InstanceSettings()
    name = service_cls.service_name
    return InstancePlan(
        service_cls,
        settings,
        instance_id or new_instance_id(name),
        _service_settings(service_cls, settings.settings),
    )


class InstanceSupervisor(Supervisor):
    """The root of one instance: binds `instance_id` into every log line of its tree."""

    def __init__(self, plan: InstancePlan, children: list[ChildSpec]) -> None:
        super().__init__(
            children,
            max_restarts=plan.settings.max_restarts,
            within_seconds=plan.settings.within_seconds,
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        )
        self.plan = plan

    async def on_start(self) -> None:
        # Children are started from this task and inherit its context variables.
        structlog.contextvars.bind_contextvars(instance_id=self.plan.instance_id)
        await super().on_start()
        plan = self.plan
        self.actor_log.info(
            "instance started",
            service=plan.service_cls.service_name,
            version=plan.version,
            namespace=plan.settings.namespace or None,
            registered=plan.settings.registration,
        )


@dataclass(frozen=True, slots=True)
class _Cells:
    """The cells of one tree incarnation (see the table in the module docstring)."""

    leadership: Cell[Leadership | None] = field(
        default_factory=lambda: Cell[Leadership | None](None, writer="leadership")
    )
    configuration: Cell[BoundValue] = field(
        default_factory=lambda: Cell(BoundValue(), writer="configuration")
    )
    serving: Cell[bool] = field(default_factory=lambda: Cell(False, writer="service"))
    service: Cell[ActorRef | None] = field(
        default_factory=lambda: Cell[ActorRef | None](None, writer="service")
    )
    status: Cell[InstanceStatus] = field(
        default_factory=lambda: Cell(InstanceStatus.ACTIVE, writer="heartbeat")
    )
    heartbeat: Cell[ActorRef | None] = field(
        default_factory=lambda: Cell[ActorRef | None](None, writer="heartbeat")
    )
    events: Cell[ActorRef | None] = field(
        default_factory=lambda: Cell[ActorRef | None](None, writer="events")
    )


def _configuration_children(
    plan: InstancePlan, instance: Instance, connection: Connection, cells: _Cells
) -> list[ChildSpec]:
    """`config-watch` and `config`, when the service follows a configuration.

    (The ids are short: they are the last segment of the actors' paths in every log line.)
    """
    binding = plan.configuration_binding
    if binding is None:
        return []
    topic = WatchTopic()

    def configuration() -> Actor:
        return ConfigurationActor(
            instance,
            binding,
            topic,
            connection=connection,
            configuration=cells.configuration,
            service=cells.service,
        )

    return [
        watch_child(
            "config-watch",
            connection,
            configuration_bucket_spec(instance.buckets),
            WATCHED_KEYS,
            topic,
            idle_heartbeat=plan.settings.discovery.watch_heartbeat,
            kv_timeout=instance.kv_timeout,
        ),
        ChildSpec("config", configuration, shutdown=instance.kv_timeout + 1.0),
    ]


def _events_children(
    instance: Instance, plan: InstancePlan, connection: Connection, cells: _Cells
) -> list[ChildSpec]:
    """`events`, when the service has durable event handlers (docs/guides/events.md)."""
    handlers = tuple(h for h in endpoints_of(plan.service_cls).events if h.durable is not None)
    if not handlers:
        return []

    def events() -> Actor:
        return EventsActor(
            instance,
            handlers,
            connection=connection,
            service=cells.service,
            serving=cells.serving,
            events=cells.events,
        )

    # Stopping deletes its broadcast consumers: a JetStream request each.
    return [ChildSpec("events", events, shutdown=instance.kv_timeout * (len(handlers) + 1))]


def instance_tree(plan: InstancePlan) -> Callable[[], Supervisor]:
    """A factory of the instance's supervisor; each call wires a fresh tree."""
    instance = plan.instance

    def make() -> Supervisor:
        settings = plan.settings
        nats = settings.nats.model_copy(update={"name": settings.nats.name or plan.instance_id})
        connection = Connection(plan.instance_id)
        cells = _Cells()
        discovery = discovery_wiring(
            settings.discovery,
            connection,
            instance.subjects,
            instance.buckets,
            kv_timeout=instance.kv_timeout,
            enabled=settings.registration,
        )
        wiring = ServiceWiring(
            instance=instance,
            connection=connection,
            caller=discovery.caller,
            leadership=cells.leadership,
            status=cells.status,
            configuration=cells.configuration,
            heartbeat=cells.heartbeat,
            serving=cells.serving,
            service=cells.service,
            events=cells.events,
        )

        def service() -> Actor:
            actor = plan.service_cls()
            actor._actor_attach(instance, wiring)
            return actor

        def heartbeat() -> Actor:
            return HeartbeatActor(
                instance,
                settings.heartbeat,
                connection=connection,
                status=cells.status,
                heartbeat=cells.heartbeat,
                leadership=cells.leadership,
                serving=cells.serving,
                service=cells.service,
            )

        children = [
            connection_child(nats, connection),
            *discovery.children,
            *_configuration_children(plan, instance, connection, cells),
            *leadership_children(
                instance,
                settings.leadership,
                connection=connection,
                leadership=cells.leadership,
                service=cells.service,
                heartbeat=cells.heartbeat,
                watch_heartbeat=settings.discovery.watch_heartbeat,
            ),
            ChildSpec("service", service, shutdown=plan.service_cls.drain_timeout + 1.0),
            *_events_children(instance, plan, connection, cells),
        ]
        if settings.registration:
            children.append(ChildSpec("heartbeat", heartbeat, shutdown=instance.kv_timeout + 1.0))
        return InstanceSupervisor(plan, children)

    return make


def instance_spec(plan: InstancePlan) -> ChildSpec:
    """The child spec that runs `plan` under a supervisor (id = the instance id)."""
    s = plan.settings
    # The children stop one after another: the service drains, the heartbeat
    # deregisters, the leadership is released and its watch deleted, the
    # discovery actors delete their watch, the connection drains.
    kv_steps = 5 if plan.sticky_active_group is not None else 3
    shutdown = plan.service_cls.drain_timeout + kv_steps * s.kv_timeout + s.nats.drain_timeout + 7.0
    return ChildSpec(plan.instance_id, instance_tree(plan), shutdown=shutdown)


@dataclass(frozen=True, slots=True)
class RunningInstance:
    """A started instance: its id and the ref of its supervisor."""

    instance_id: str
    ref: ActorRef
    plan: InstancePlan


async def start_instance(
    system: ActorSystem,
    service_cls: type[ServiceActor],
    settings: InstanceSettings | None = None,
    *,
    instance_id: str | None = None,
) -> RunningInstance:
    """Start one instance of `service_cls` as a top-level actor; ready when it returns.

    Ready means connected and subscribed, and (unless turned off) registered,
    or, when the registry could not be written, retrying that in the
    background (the instance serves meanwhile; it is just not discoverable
    yet). Stop it with `await system.stop(running.ref)`.
    """
    plan = plan_instance(service_cls, settings, instance_id=instance_id)
    spec = instance_spec(plan)
    ref = await system.spawn(spec.start, name=plan.instance_id, shutdown=spec.shutdown)
    return RunningInstance(plan.instance_id, ref, plan)
