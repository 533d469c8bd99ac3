"""The settings of a service's instances: what a config file's `[[services]]` table holds.

`ServiceSettings` is that table (minus the class and the instance count);
`InstanceSettings` adds where NATS is and the namespace, and is what
`start_instance` takes. Every field is documented: the config reference
(docs/reference/config.md) is generated from these descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from aegis_actors._configuration.binding import ConfigurationBindingSettings
from aegis_actors._connection import ConnectionSettings
from aegis_actors._discovery.settings import DiscoverySettings
from aegis_actors._events.settings import EventsSettings
from aegis_actors._instance import DEFAULT_KV_TIMEOUT
from aegis_actors._leadership.models import LeadershipSettings
from aegis_actors._models import check_version
from aegis_actors._registry.heartbeat import HeartbeatSettings
from aegis_actors._subjects import check_namespace, check_sticky_active_group


class ServiceSettings(BaseModel):
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
    configuration: ConfigurationBindingSettings | None = Field(
        None,
        description="The configuration the service follows live (overrides the class's "
        "`configuration_binding` names; its model stays).",
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


class InstanceSettings(ServiceSettings):
    """Everything one instance needs: its service options, where NATS is, its namespace."""

    nats: ConnectionSettings = Field(
        default_factory=ConnectionSettings, description="Where NATS is."
    )
    namespace: str = Field(
        "", description="Prefix of subjects and bucket names, to share a server between fleets."
    )
    events: EventsSettings = Field(
        default_factory=EventsSettings,
        description="Limits of the event streams the instance makes (a config file's `[events]`).",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_namespace(value)
