"""What the `/metrics` collector reads when scraped: the live parts of the runtime.

Each part registers itself here when it is made (a weak reference: a part
that is gone drops out). Their counters are their own plain ints
(`EndpointStats`, `Caller`, `Supervisor`...), read at scrape time, so the
hot paths pay nothing for metrics they already keep.
"""

from __future__ import annotations

from typing import Any, Final
from weakref import WeakSet, WeakValueDictionary

#: instance id -> its `RequestServer` (the latest: a restarted service replaces it).
SERVERS: Final[WeakValueDictionary[str, Any]] = WeakValueDictionary()
#: instance id -> its `HeartbeatActor` (heartbeats written and failed).
HEARTBEATS: Final[WeakValueDictionary[str, Any]] = WeakValueDictionary()
#: Every `Caller` (one per instance, one per `Client`).
CALLERS: Final[WeakSet[Any]] = WeakSet()
#: Every `Supervisor`.
SUPERVISORS: Final[WeakSet[Any]] = WeakSet()
#: Every `ActorSystem` (dead letters).
SYSTEMS: Final[WeakSet[Any]] = WeakSet()
