"""`Instance`: who a running service instance is, frozen for its whole life.

What changes while it runs (its connection, status, leadership, bound
configuration, whether it serves) is not here: each such fact has one writer
and travels as a message or lives in a `Cell` (see `_instance_tree` for who
writes what).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aegis_actors._buckets import Buckets
from aegis_actors._events.settings import EventsSettings
from aegis_actors._registry.models import BoundConfiguration
from aegis_actors._subjects import Subjects

#: Seconds a JetStream (KV) request may take before it counts as unavailable.
DEFAULT_KV_TIMEOUT: Final = 2.0


@dataclass(frozen=True, slots=True)
class Instance:
    """The identity of one service instance (`ServiceActor.actor_instance`)."""

    service_name: str
    instance_id: str
    """`{serviceName}-{8 hex}`: in the registry key and the `aegis.inst.*` subjects."""
    version: str
    subjects: Subjects = field(default_factory=Subjects)
    """Builds every subject of the instance's namespace (`subjects.own(...)`, ...)."""
    buckets: Buckets = field(default_factory=Buckets)
    settings: Any = None
    """The service's own settings, validated against its `Settings` model if it has one."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Extra facts written in the registry record."""
    sticky_active_group: str | None = None
    """The service's sticky-active group: one instance of it is ACTIVE, the others STANDBY."""
    kv_timeout: float = DEFAULT_KV_TIMEOUT
    """Seconds a KV operation may take."""
    events: EventsSettings = field(default_factory=EventsSettings)
    """The limits of the event streams this instance makes (`[events]`)."""
    bound_configuration: BoundConfiguration | None = None
    """Which configuration the service follows (written in its registry record)."""
