"""One service instance as a supervised actor tree (SPEC section 3).

```
{instanceId}  InstanceSupervisor (one_for_one, auto_shutdown=any_significant)
├── connection   ConnectionActor   temporary, significant: its loss rebuilds the tree
├── kv-watch     KVWatchActor      watches the registry (discovery mode `watch`)
├── discovery    DiscoveryCacheActor  the instance cache `call()` reads (unless discovery is off)
├── config-watch KVWatchActor      watches configurations (if the service follows one)
├── config       ConfigActor       validates its changes and tells the service
├── leadership-watch KVWatchActor  watches the group's leadership key (sticky-active only)
├── leadership   LeadershipActor   keeps the instance ACTIVE or STANDBY in its group
├── service      the user's ServiceActor
└── heartbeat    HeartbeatActor    (unless registration is off)
```

Children start in this order and stop in reverse, which gives the graceful
stop the SPEC asks for: the heartbeat deletes the registry key first, then
the service stops taking calls and drains, then (in a sticky-active group)
the leadership key is released for a standby, then the connection drains.
The tree is one-for-one, so a crashed heartbeat restarts alone, unnoticed by
the service; but every actor here shares the connection, so the connection
is a significant child: if it dies, the whole instance restarts with a new
one (OTP's auto_shutdown), rather than leaving siblings on a dead client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from aegis_actors.actor import Actor
from aegis_actors.buckets import Buckets
from aegis_actors.configuration.binding import ConfigBinding, ConfigBindingSettings
from aegis_actors.configuration.live import WATCHED_KEYS, ConfigActor
from aegis_actors.configuration.store import config_bucket_spec
from aegis_actors.connection import ConnectionSettings, connection_child
from aegis_actors.context import DEFAULT_KV_TIMEOUT, InstanceContext
from aegis_actors.discovery.settings import DiscoverySettings
from aegis_actors.discovery.tree import discovery_wiring
from aegis_actors.leadership.models import LeadershipSettings
from aegis_actors.leadership.tree import leadership_children
from aegis_actors.models import check_version
from aegis_actors.ref import ActorRef
from aegis_actors.registry.heartbeat import HeartbeatActor, HeartbeatSettings
from aegis_actors.registry.models import BoundConfiguration, new_instance_id
from aegis_actors.service import ServiceActor
from aegis_actors.subjects import Subjects, check_namespace, check_sticky_active_group
from aegis_actors.supervisor import AutoShutdown, ChildSpec, Supervisor
from aegis_actors.system import ActorSystem
from aegis_actors.watch import KVWatchActor, WatchTopic


class ServiceOptions(BaseModel):
    """How to run the instances of a service: the per-service table of a config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[str, AfterValidator(check_version)] | None = Field(
        None, description="Overrides the class's `version` (MAJOR.MINOR.PATCH)."
    )
    registration: bool = Field(
        True,
        description=(
            "Use the service registry: register and send heartbeats, and find other "
            "services through it (off: calls go to queue groups)."
        ),
    )
    heartbeat: HeartbeatSettings = Field(
        default_factory=HeartbeatSettings, description="Key TTL and heartbeat timing."
    )
    discovery: DiscoverySettings = Field(
        default_factory=DiscoverySettings,
        description="How this instance finds and calls other services.",
    )
    sticky_active_group: str | None = Field(
        None,
        description="Sticky-active group of the instances (overrides the class's "
        "`sticky_active_group`): one of them is ACTIVE and takes the calls, the others "
        "are STANDBY.",
    )
    leadership: LeadershipSettings = Field(
        default_factory=LeadershipSettings,
        description="Leadership key TTL and renewals (sticky-active groups only).",
    )
    configuration: ConfigBindingSettings | None = Field(
        None,
        description="The configuration the service follows live (overrides the class's "
        "`config_binding` names; its model stays).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Extra facts written in the registry record."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Handed to the service class (see its `Settings`)."
    )
    kv_timeout: float = Field(
        DEFAULT_KV_TIMEOUT, gt=0, description="Seconds a KV operation may take."
    )
    max_restarts: int = Field(
        3, ge=0, description="Restarts allowed within `within_seconds` in one instance tree."
    )
    within_seconds: float = Field(5.0, gt=0, description="Window of `max_restarts`.")

    @field_validator("sticky_active_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else check_sticky_active_group(value)


class InstanceSettings(ServiceOptions):
    """Everything one instance needs: its service options, where NATS is, its namespace."""

    nats: ConnectionSettings = Field(
        default_factory=ConnectionSettings, description="Where NATS is."
    )
    namespace: str = Field(
        "", description="Prefix of subjects and bucket names, to share a server between fleets."
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_namespace(value)


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
    def config_binding(self) -> ConfigBinding | None:
        """The class's binding, with the names the settings give, if any."""
        declared = self.service_cls.config_binding
        names = self.settings.configuration
        if names is None:
            return declared
        model = declared.model if declared is not None else None
        return ConfigBinding(names.application, names.name, model)

    @property
    def sticky_active_group(self) -> str | None:
        """The settings' group, else the class's (None: not a sticky-active service)."""
        return self.settings.sticky_active_group or self.service_cls.sticky_active_group

    def context(self) -> InstanceContext:
        s = self.settings
        binding = self.config_binding
        return InstanceContext(
            service_name=self.service_cls.service_name,
            instance_id=self.instance_id,
            version=self.version,
            subjects=Subjects(s.namespace),
            buckets=Buckets(s.namespace),
            settings=self.service_settings,
            metadata=dict(s.metadata),
            sticky_active_group=self.sticky_active_group,
            kv_timeout=s.kv_timeout,
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


def _make_service(plan: InstancePlan, ctx: InstanceContext) -> Callable[[], Actor]:
    def make() -> Actor:
        service = plan.service_cls()
        service.actor_instance = ctx
        return service

    return make


def _configuration_children(plan: InstancePlan, ctx: InstanceContext) -> list[ChildSpec]:
    """`config-watch` and `config`, when the service follows a configuration."""
    binding = plan.config_binding
    if binding is None:
        return []
    topic = WatchTopic()
    settings = plan.settings

    def watch() -> Actor:
        return KVWatchActor(
            ctx.connection,
            config_bucket_spec(ctx.buckets),
            WATCHED_KEYS,
            topic=topic,
            connection=ctx.connection_actor,
            idle_heartbeat=settings.discovery.watch_heartbeat,
            kv_timeout=settings.kv_timeout,
        )

    return [
        ChildSpec("config-watch", watch, shutdown=settings.kv_timeout + 1.0),
        ChildSpec(
            "config",
            lambda: ConfigActor(ctx, binding, topic),
            shutdown=settings.kv_timeout + 1.0,
        ),
    ]


def instance_tree(plan: InstancePlan) -> Callable[[], Supervisor]:
    """A factory of the instance's supervisor; each call wires a fresh tree."""

    def make() -> Supervisor:
        ctx = plan.context()
        settings = plan.settings
        nats = settings.nats.model_copy(update={"name": settings.nats.name or plan.instance_id})
        drain = plan.service_cls.drain_timeout

        discovery = discovery_wiring(settings.discovery, ctx, enabled=settings.registration)
        ctx.caller = discovery.caller
        children = [
            connection_child(nats, ctx.connected),
            *discovery.children,
            *_configuration_children(plan, ctx),
            *leadership_children(
                ctx, settings.leadership, watch_heartbeat=settings.discovery.watch_heartbeat
            ),
            ChildSpec("service", _make_service(plan, ctx), shutdown=drain + 1.0),
        ]
        if settings.registration:
            children.append(
                ChildSpec(
                    "heartbeat",
                    lambda: HeartbeatActor(ctx, settings.heartbeat),
                    shutdown=settings.kv_timeout + 1.0,
                )
            )
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
