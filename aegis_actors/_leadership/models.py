"""What leadership of a sticky-active group is made of.

The key `service-leadership.{serviceName}.{group}` in the registry bucket
names the ACTIVE instance of the group; its KV revision is the fencing token.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aegis_actors._models import Timestamp, WireModel


class LeadershipSettings(BaseModel):
    """Leadership of a sticky-active group: the key's TTL and its renewals."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl: int = Field(
        10,
        ge=1,
        description="Seconds the leadership key outlives the last renewal: a standby takes "
        "over this long after the active instance dies (whole seconds).",
    )
    interval: float = Field(3.0, gt=0, description="Seconds between renewals of the key.")
    margin: float = Field(
        1.0,
        ge=0,
        description="An active instance that could not renew steps down this many seconds "
        "before its key could expire.",
    )

    @model_validator(mode="after")
    def _renewals_fit_in_the_ttl(self) -> LeadershipSettings:
        if self.interval + self.margin >= self.ttl:
            raise ValueError(
                f"leadership interval ({self.interval:g} s) plus margin ({self.margin:g} s) "
                f"must be shorter than the key TTL ({self.ttl} s), or the active instance "
                "steps down before its first renewal"
            )
        return self


@dataclass(frozen=True, slots=True)
class Leadership:
    """An instance's standing in its sticky-active group."""

    group: str
    active: bool
    revision: int | None = None
    """While active: the revision at which this instance took the key, its fencing
    token. It stays the same while the instance stays active, and every later
    leader of the group has a larger one: put it in your writes and let the
    store refuse a smaller one than it has seen. None while standby."""


class LeadershipRecord(WireModel):
    """The value of `service-leadership.{serviceName}.{group}`: who is active."""

    # Written by other processes (maybe newer ones): tolerate fields we do not know.
    model_config = ConfigDict(extra="ignore")

    service_name: str = Field(description="The service of the group.")
    sticky_active_group: str = Field(description="The group.")
    instance_id: str = Field(description="The ACTIVE instance.")
    active_since: Timestamp = Field(description="When it took the key.")


@dataclass(frozen=True, slots=True)
class LeadershipChanged:
    """Told to the service (ahead of queued requests) when its leadership changes."""

    leadership: Leadership
