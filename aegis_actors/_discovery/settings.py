"""`DiscoverySettings`: how an instance (or a `Client`) finds and calls services."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aegis_actors._subjects import check_service_name


class DiscoveryMode(StrEnum):
    """How the cache of instances is kept current."""

    WATCH = "watch"
    """A KV watch pushes every registration, heartbeat, stop and expiry."""
    TTL = "ttl"
    """A service's instances are read from the registry when older than `cache_ttl`."""
    OFF = "off"
    """No discovery: calls go to the service's queue group (`aegis.rpc.{service}.{method}`)."""


class CallStrategy(StrEnum):
    """How `call()` picks one of a service's healthy instances."""

    ROUND_ROBIN = "round_robin"
    """Each in turn."""
    RANDOM = "random"
    """Uniformly at random."""
    STICKY = "sticky"
    """The same instance while it is healthy; another (in turn) once it is gone."""
    LEAST_OUTSTANDING = "least_outstanding"
    """The one with the fewest calls in flight from this caller (ties in turn)."""


class DiscoverySettings(BaseModel):
    """How instances find and call other services: discovery, strategies, retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: DiscoveryMode = Field(
        DiscoveryMode.WATCH,
        description=(
            "`watch`: a KV watch keeps the cache current; `ttl`: the registry is read again "
            "when a service's entry is older than `cache_ttl`; `off`: calls go to the "
            "service's queue group, without discovery."
        ),
    )
    cache_ttl: float = Field(
        10.0, gt=0, description="Seconds a service's instances are used before a reread (`ttl`)."
    )
    negative_ttl: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds an answer of no instances (or an unreachable registry) is remembered, so "
            "calls to a service that is down do not each cost a registry read."
        ),
    )
    strategy: CallStrategy = Field(
        CallStrategy.ROUND_ROBIN, description="How to pick an instance, unless `strategies` says."
    )
    strategies: dict[str, CallStrategy] = Field(
        default_factory=dict, description="Strategy per target service name."
    )
    call_timeout: float = Field(
        5.0, gt=0, description="Seconds a `call()` waits when it is not given a timeout."
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description=(
            "Attempts of an idempotent call that times out (each on another instance when "
            "there is one). Retries after 'no responders' do not count: they cost nothing."
        ),
    )
    attempt_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Share of the time left that one attempt of an idempotent call may use, so a "
            "retry still has time; the last attempt gets all that is left."
        ),
    )
    watch_heartbeat: float = Field(
        2.0,
        ge=0.1,
        description=(
            "Seconds between the server's idle heartbeats on the watch; a watch silent for "
            "two of them is rebuilt and resynchronised."
        ),
    )

    @field_validator("strategies")
    @classmethod
    def _service_names(cls, value: dict[str, CallStrategy]) -> dict[str, CallStrategy]:
        for name in value:
            check_service_name(name)
        return value

    def strategy_for(self, service: str) -> CallStrategy:
        return self.strategies.get(service, self.strategy)
