"""`Client`: calls aegis services from code outside the runtime (scripts, web apps, tests).

It runs a small actor tree of its own, so its calls discover, balance and fail
over exactly as a `ServiceActor`'s do:

```
client-{8 hex}  Supervisor (one_for_one, auto_shutdown=any_significant)
├── connection   ConnectionActor (significant)
├── kv-watch     KVWatchActor on the registry (discovery mode `watch`)
└── discovery    DiscoveryCacheActor (unless discovery is off)
```

Example:

    async with Client(url="nats://127.0.0.1:4222") as client:
        print(await client.call("greeter", "greet", {"name": "Ada"}))
"""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import Any, Unpack

from aegis_actors._buckets import Buckets
from aegis_actors._child_spec import AutoShutdown
from aegis_actors._connection import Connection, ConnectionSettings, connection_child
from aegis_actors._discovery.caller import Caller, CallOptions, CallStatistics
from aegis_actors._discovery.settings import DiscoveryMode, DiscoverySettings
from aegis_actors._discovery.snapshot import DiscoveryCache
from aegis_actors._discovery.tree import discovery_wiring
from aegis_actors._errors import ActorStartError, ConfigError
from aegis_actors._events.publish import EventPublisher, Published
from aegis_actors._events.settings import EventsSettings
from aegis_actors._instance import DEFAULT_KV_TIMEOUT
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._subjects import Subjects, check_namespace, check_service_name
from aegis_actors._supervisor import Supervisor
from aegis_actors._system import ActorSystem
from aegis_actors._transport import NatsClient as NatsClient


class Client:
    """Calls services over NATS with discovery; use it as an async context manager.

    It may be entered and left in different tasks (its actors run in a task
    of their own), as a pytest-asyncio yield fixture does.
    """

    def __init__(
        self,
        url: str | list[str] | None = None,
        *,
        namespace: str = "",
        nats: ConnectionSettings | None = None,
        discovery: DiscoverySettings | None = None,
        kv_timeout: float = DEFAULT_KV_TIMEOUT,
        events: EventsSettings | None = None,
    ) -> None:
        """Set the client up; nothing connects before `start()` (or `async with`).

        Args:
            url: NATS server URL(s); overrides `nats.url`.
            namespace: the fleet's namespace (prefix of its subjects and buckets).
            nats: connection settings (credentials, TLS, ...).
            discovery: how to find and call services (watch, TTL cache, or off).
            kv_timeout: seconds a registry read (or a durable event's publish) may take.
            events: limits of the event streams `publish_event` makes (`[events]`).

        Raises:
            ConfigError: a bad namespace or timeout.
        """
        try:
            check_namespace(namespace)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not kv_timeout > 0:
            raise ConfigError(f"kv_timeout must be > 0 seconds, got {kv_timeout!r}")
        self.id = f"client-{secrets.token_hex(4)}"
        settings = nats or ConnectionSettings()
        if url is not None:
            settings = settings.model_copy(update={"url": url})
        self.nats_settings = settings.model_copy(update={"name": settings.name or self.id})
        self.namespace = namespace
        self.discovery = discovery or DiscoverySettings()
        self.kv_timeout = kv_timeout
        self._connection: Connection | None = None
        self._caller: Caller | None = None
        self._cache: DiscoveryCache | None = None
        self._system: ActorSystem | None = None
        self._publisher = EventPublisher(
            lambda: self.nats,
            subjects=Subjects(namespace),
            buckets=Buckets(namespace),
            settings=events or EventsSettings(),
            timeout=kv_timeout,
        )

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and start discovery; ready (synced with the registry) when it returns.

        Raises:
            NatsUnavailableError: NATS could not be reached.
        """
        if self._system is not None:
            raise RuntimeError("the client is already started")
        connection = Connection(self.id)
        wiring = discovery_wiring(
            self.discovery,
            connection,
            Subjects(self.namespace),
            Buckets(self.namespace),
            kv_timeout=self.kv_timeout,
        )
        settings = self.nats_settings

        def tree() -> Supervisor:
            children = [
                connection_child(settings, connection),
                *wiring.children,
            ]
            return Supervisor(children, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT)

        system = ActorSystem(self.id)
        await system.start()
        try:
            shutdown = settings.drain_timeout + 2 * self.kv_timeout + 5.0
            await system.spawn(tree, name=self.id, shutdown=shutdown)
            if wiring.cache is not None:
                cache = wiring.cache
                await cache.wait_for(lambda _: cache.ready, timeout=shutdown)
        except BaseException as exc:
            await system.close()
            root = _root_cause(exc)
            if root is exc:
                raise
            raise root from exc
        self._system, self._connection = system, connection
        self._caller, self._cache = wiring.caller, wiring.cache

    async def close(self) -> None:
        """Stop discovery and drain the connection."""
        system, self._system = self._system, None
        caller, self._caller = self._caller, None
        if caller is not None:
            await caller.close()
        if system is not None:
            await system.close()

    @property
    def nats(self) -> NatsClient:
        """The client's NATS connection."""
        if self._connection is None or self._system is None:
            raise RuntimeError("the client is not started (use `async with Client(...)`)")
        return self._connection.client

    @property
    def cache(self) -> DiscoveryCache | None:
        """The discovery cache (its `snapshot` and `statistics()`); None when discovery is off."""
        return self._cache

    async def call(
        self,
        service: str,
        method: str,
        params: Any = None,
        *,
        envelope: bool = False,
        **options: Unpack[CallOptions],
    ) -> Any:
        """Call `method` of `service` and return its data, as `ServiceActor.call` does.

        `envelope=True` returns the whole success reply instead (`ok`, `status`,
        `data` and, where a KV entry is involved, `revision`): for tools that
        show or forward what the service sent.

        Raises:
            ServiceError: the method's error reply, SERVICE_UNAVAILABLE or
                DEADLINE_EXCEEDED.
            ValueError: a bad name, timeout or params.
        """
        if self._caller is None:
            raise RuntimeError("the client is not started (use `async with Client(...)`)")
        return await self._caller.call(service, method, params, envelope=envelope, **options)

    async def publish_event(
        self,
        subject: str,
        payload: Any = None,
        *,
        durable: bool | None = None,
        event_id: str | None = None,
    ) -> Published:
        """Publish an event, as `ServiceActor.publish_event` does (docs/guides/events.md).

        Raises:
            ValueError: a bad subject or event id, or a payload that is not JSON.
            StoreUnavailableError: a durable event got no acknowledgement (publish
                it again with the same `event_id`: it is stored once).
            EventNotStoredError: the stream refused it.
        """
        return await self._publisher.publish(subject, payload, durable=durable, event_id=event_id)

    async def instances(self, service: str) -> tuple[ServiceInstance, ...]:
        """The registered instances of `service`, from the cache (read on a miss).

        Raises:
            ServiceError: SERVICE_UNAVAILABLE when the registry is unreachable
                and nothing is cached.
        """
        check_service_name(service)
        cache = self._require_cache()
        view = cache.snapshot.get(service)
        if view is None:
            view = await cache.fetch(service, timeout=self.kv_timeout)
        return view.instances

    async def wait_for_instances(
        self, service: str, count: int = 1, *, timeout: float = 10.0
    ) -> tuple[str, ...]:
        """Wait until `count` instances of `service` may be called; return their ids.

        Needs discovery mode `watch` (the watch is what tells of new instances).

        Raises:
            TimeoutError: fewer than `count` within `timeout` seconds (the
                message names the service, the count waited for and the
                count seen).
        """
        check_service_name(service)
        cache = self._require_cache()
        if cache.mode is not DiscoveryMode.WATCH:
            raise RuntimeError("wait_for_instances() needs discovery mode 'watch'")

        def enough(snapshot: Any) -> bool:
            view = snapshot.get(service)
            return view is not None and len(view.ids) >= count

        try:
            await cache.wait_for(enough, timeout=timeout)
        except TimeoutError:
            view = cache.snapshot.get(service)
            seen = len(view.ids) if view is not None else 0
            why = view.describe() if view is not None else "none registered"
            raise TimeoutError(
                f"waited {timeout:g} s for {count} callable instance(s) of {service!r}, "
                f"saw {seen} ({why})"
            ) from None
        return tuple(cache.snapshot[service].ids)

    def statistics(self) -> CallStatistics:
        """Calls, retries, per-instance latency, and the discovery cache's counters."""
        if self._caller is None:
            raise RuntimeError("the client is not started (use `async with Client(...)`)")
        return self._caller.statistics()

    def _require_cache(self) -> DiscoveryCache:
        if self._system is None:
            raise RuntimeError("the client is not started (use `async with Client(...)`)")
        if self._cache is None:
            raise RuntimeError("discovery is off for this client (mode 'off')")
        return self._cache


def _root_cause(exc: BaseException) -> BaseException:
    """The failure under nested `ActorStartError`s (e.g. `NatsUnavailableError`)."""
    while isinstance(exc, ActorStartError):
        exc = exc.reason
    return exc
