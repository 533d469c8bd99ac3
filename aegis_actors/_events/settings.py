"""Section `[events]` of a config file: the limits of the streams durable events live in.

aegis makes one stream per event domain (docs/guides/events.md). These
settings are what it creates them with; a value set explicitly (in the file
or in code) is also applied to a stream that already exists, while a default
never overrides what an operator changed by hand.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aegis_actors._subjects import DOMAIN_RE

DAY: Final = 86_400.0


class StreamLimits(BaseModel):
    """The limits of one domain's stream; a key left out takes `[events]`'s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age: float | None = Field(None, ge=0, description="Seconds an event is kept (0: no limit).")
    max_bytes: int | None = Field(
        None,
        ge=-1,
        description="Bytes the stream may hold; the oldest events go first (-1: no limit).",
    )
    max_msgs: int | None = Field(
        None, ge=-1, description="Events the stream may hold; the oldest go first (-1: no limit)."
    )
    duplicate_window: float | None = Field(
        None,
        gt=0,
        description="Seconds within which a publish with an event id already stored is dropped.",
    )
    replicas: int | None = Field(
        None,
        ge=1,
        le=5,
        description="Copies of the stream (default: 3 on a cluster of three or more, else 1).",
    )


class EventsSettings(BaseModel):
    """Section `[events]`: limits of the event streams aegis creates, and of its dead letters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age: float = Field(7 * DAY, ge=0, description="Seconds an event is kept (0: no limit).")
    max_bytes: int = Field(
        -1,
        ge=-1,
        description="Bytes a domain's stream may hold; the oldest events go first (-1: no limit).",
    )
    max_msgs: int = Field(
        -1,
        ge=-1,
        description="Events a domain's stream may hold; the oldest go first (-1: no limit).",
    )
    duplicate_window: float = Field(
        120.0,
        gt=0,
        description="Seconds within which a publish with an event id already stored is dropped.",
    )
    replicas: int | None = Field(
        None,
        ge=1,
        le=5,
        description="Copies of each stream (default: 3 on a cluster of three or more, else 1).",
    )
    dead_letter_max_age: float = Field(
        30 * DAY, ge=0, description="Seconds a dead letter is kept (0: no limit)."
    )
    domains: dict[str, StreamLimits] = Field(
        default_factory=dict,
        description="One domain's stream limits (`[events.domains.order]`), over the above.",
    )

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: dict[str, StreamLimits]) -> dict[str, StreamLimits]:
        for domain in value:
            if not DOMAIN_RE.fullmatch(domain):
                raise ValueError(
                    f"domain {domain!r} must match {DOMAIN_RE.pattern} (a stream is named after it)"
                )
        return value

    def limits(self, domain: str) -> tuple[dict[str, Any], set[str]]:
        """The stream limits of `domain`, and which of them were set explicitly.

        Explicit values are applied to an existing stream too; defaults only
        when aegis creates it.
        """
        keys = ("max_age", "max_bytes", "max_msgs", "duplicate_window", "replicas")
        values = {key: getattr(self, key) for key in keys}
        explicit = {key for key in keys if key in self.model_fields_set}
        override = self.domains.get(domain)
        if override is not None:
            for key in keys:
                if key in override.model_fields_set and getattr(override, key) is not None:
                    values[key] = getattr(override, key)
                    explicit.add(key)
        return values, explicit
