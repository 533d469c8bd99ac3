"""The contexts an actor's code runs in: its service instance, and the request it serves."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aegis_actors.buckets import Buckets
from aegis_actors.errors import NatsUnavailableError
from aegis_actors.leadership.models import Leadership
from aegis_actors.ref import ActorRef
from aegis_actors.registry.models import InstanceStatus
from aegis_actors.subjects import Subjects
from aegis_actors.transport import JetStreamContext, NatsClient
from aegis_actors.wire import TRACE_ID_HEADER

if TYPE_CHECKING:
    from aegis_actors.discovery.caller import Caller

#: Seconds a JetStream (KV) request may take before it counts as unavailable.
DEFAULT_KV_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class HealthQuery:
    """Ask a service actor (with `ask_priority`) whether it is healthy; answers a bool."""


@dataclass(frozen=True, slots=True)
class BeatNow:
    """Tell the heartbeat actor to write the record now: the status has changed."""


@dataclass(eq=False)
class InstanceContext:
    """What the actors of one service instance share (one per instance-tree incarnation)."""

    service_name: str
    instance_id: str
    version: str
    subjects: Subjects = field(default_factory=Subjects)
    buckets: Buckets = field(default_factory=Buckets)
    settings: Any = None
    """The service's own settings, validated against its `Settings` model if it has one."""
    metadata: dict[str, Any] = field(default_factory=dict)
    sticky_active_group: str | None = None
    """The service's sticky-active group: one instance of it is ACTIVE, the others STANDBY."""
    kv_timeout: float = DEFAULT_KV_TIMEOUT
    status: InstanceStatus = InstanceStatus.ACTIVE
    """What the heartbeat last decided (and wrote, if registration is on)."""
    leadership: Leadership | None = None
    """The instance's standing in its sticky-active group, kept by the `LeadershipActor`
    (None outside a group)."""
    serving: bool = True
    """The service takes requests: False for a standby of a sticky-active group, until
    its service has subscribed to its request subjects as the ACTIVE instance."""
    configuration: Any = None
    """The bound configuration's value (kept current by the `ConfigActor`)."""
    configuration_revision: int = 0
    client: NatsClient | None = None
    """Set by the connection actor once connected."""
    service: ActorRef | None = None
    """The service actor, once it serves."""
    connection_actor: ActorRef | None = None
    """The connection actor, once connected (siblings ask it for `ConnectionChanged`)."""
    heartbeat: ActorRef | None = None
    """The heartbeat actor while it runs (told `BeatNow` when the status changes)."""
    caller: Caller | None = None
    """Makes the instance's `call()`s (set by the instance tree)."""
    _js: JetStreamContext | None = None

    @property
    def connection(self) -> NatsClient:
        if self.client is None:
            raise NatsUnavailableError(f"{self.instance_id} has no NATS connection yet")
        return self.client

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self.connection.jetstream(timeout=self.kv_timeout)
        return self._js

    def connected(self, client: NatsClient, actor: ActorRef | None = None) -> None:
        """Called by the connection actor with its fresh client (and its own ref)."""
        self.client = client
        self._js = None
        if actor is not None:
            self.connection_actor = actor


@dataclass(slots=True)
class RequestContext:
    """The request a handler is serving: read it with `current_request()`."""

    subject: str
    method: str
    headers: Mapping[str, str] | None
    deadline: float | None
    """Unix time (seconds) after which the caller no longer waits, from `Aegis-Deadline`."""
    _trace_id: str | None = None

    @property
    def trace_id(self) -> str:
        """The caller's `Aegis-Trace-Id`, or a new one for this request."""
        if self._trace_id is None:
            header = self.headers.get(TRACE_ID_HEADER) if self.headers else None
            self._trace_id = header or secrets.token_hex(8)
        return self._trace_id

    def remaining(self) -> float | None:
        """Seconds until the deadline (negative once past), None without a deadline."""
        return None if self.deadline is None else self.deadline - time.time()


_current_request: ContextVar[RequestContext | None] = ContextVar("aegis_request", default=None)


def current_request() -> RequestContext | None:
    """The request the running handler serves (None outside a handler)."""
    return _current_request.get()
