"""What an instance writes about itself in the registry (docs/reference/wire-protocol.md)."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any, Final

from pydantic import ConfigDict, Field

from aegis_actors._models import Timestamp, WireModel
from aegis_actors._subjects import check_service_name

#: The key of a record's `metadata` that lists the methods the service declares
#: `@rpc(idempotent=True)`: callers retry those on another instance after a timeout.
IDEMPOTENT_METHODS: Final = "idempotentMethods"


class InstanceStatus(StrEnum):
    """An instance's state as it writes it in its registry record (`status`).

    Callers never call an UNHEALTHY instance, nor a STANDBY one in a service
    whose instances carry a sticky-active group.
    """

    ACTIVE = "ACTIVE"
    """Serving calls."""
    UNHEALTHY = "UNHEALTHY"
    """Alive but not to be called: its health hook said so, or its heartbeats failed."""
    STANDBY = "STANDBY"
    """Healthy, waiting to become active in a sticky-active group."""


class BoundConfiguration(WireModel):
    """The configuration an instance follows live, by application and configuration name."""

    model_config = ConfigDict(extra="ignore")

    application: str = Field(description="The application's name.")
    name: str = Field(description="The configuration's name in it.")


class ServiceInstance(WireModel):
    """The value of `service-instances.{serviceName}.{instanceId}`."""

    # Written by other processes (maybe newer ones): tolerate fields we do not know.
    model_config = ConfigDict(extra="ignore")

    service_name: str = Field(description="The service this instance belongs to.")
    instance_id: str = Field(description="`{serviceName}-{8 hex}`, unique per instance.")
    version: str = Field(description="The version the instance runs.")
    status: InstanceStatus = Field(description="ACTIVE, UNHEALTHY or STANDBY.")
    sticky_active_group: str | None = Field(None, description="Its sticky-active group, if any.")
    leadership_revision: int | None = Field(
        None,
        description="While ACTIVE in a sticky-active group: the revision at which it took "
        "the group's leadership key (a newer leader has a larger one).",
    )
    configuration: BoundConfiguration | None = Field(
        None, description="The configuration it follows live, if any (its binding)."
    )
    last_heartbeat: Timestamp = Field(description="When the instance last wrote this record.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form facts.")

    @property
    def healthy(self) -> bool:
        return self.status is not InstanceStatus.UNHEALTHY


def new_instance_id(service_name: str) -> str:
    """`{serviceName}-{8 hex}`."""
    return f"{check_service_name(service_name)}-{secrets.token_hex(4)}"
