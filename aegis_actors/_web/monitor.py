"""The web monitor's actor tree, and `open_monitor` to run it (what `aegis web` runs).

```
web-{8 hex}         Supervisor (one_for_one, auto_shutdown=any_significant)
├── connection      ConnectionActor (significant)
├── registry-watch  KVWatchActor on the registry's instance keys
├── definitions-watch  KVWatchActor on the service definitions
├── probe           ProbeActor: $SRV.STATS samples, write access
├── fleet           FleetActor: the view, pushed to every page
└── http            HttpActor: aiohttp on host:port (stops first: pages end before the view)
```

The registry watch is the same machinery the instances' discovery uses (a
resync after a reconnect, a gap or a silent watch), so the pages see exactly
what discovery sees.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from aegis_actors._actor import Actor
from aegis_actors._buckets import Buckets, instance_keys
from aegis_actors._child_spec import AutoShutdown, ChildSpec, Restart
from aegis_actors._connection import ConnectionActor, ConnectionSettings
from aegis_actors._instance import DEFAULT_KV_TIMEOUT
from aegis_actors._kv import BucketSpec
from aegis_actors._mgmt.client import DEFAULT_TIMEOUT
from aegis_actors._mgmt.definitions import definitions_bucket_spec
from aegis_actors._ref import ActorRef
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._subjects import Subjects
from aegis_actors._supervisor import Supervisor
from aegis_actors._system import ActorSystem
from aegis_actors._watch import KVWatchActor, WatchTopic
from aegis_actors._web.app import build_app
from aegis_actors._web.context import WebContext
from aegis_actors._web.fleet import FleetActor
from aegis_actors._web.probe import ProbeActor
from aegis_actors._web.settings import WebSettings

#: Seconds the HTTP server gives open requests to finish when it stops.
HTTP_SHUTDOWN: Final = 2.0


class HttpActor(Actor):
    """Serves the monitor's pages while it runs; `on_listening(url)` once bound."""

    def __init__(
        self,
        ctx: WebContext,
        settings: WebSettings,
        *,
        timeout: float,
        on_listening: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.settings = settings
        self.timeout = timeout
        self.on_listening = on_listening
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        app = build_app(self.ctx, self.settings, timeout=self.timeout)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        url = page_url(runner.addresses[0])
        self.actor_log.info("web monitor listening", url=url)
        if self.on_listening is not None:
            self.on_listening(url)

    async def on_stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def page_url(address: Any) -> str:
    """`http://host:port/` of a bound socket address (IPv6 in brackets)."""
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def web_tree(
    nats: ConnectionSettings,
    settings: WebSettings,
    *,
    namespace: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    kv_timeout: float = DEFAULT_KV_TIMEOUT,
    on_listening: Callable[[str], None] | None = None,
) -> ChildSpec:
    """The monitor as one child spec: spawn it in any `ActorSystem` (or a fleet's tree)."""
    ctx = WebContext(Subjects(namespace), Buckets(namespace), settings.stats_interval)
    name = f"web-{secrets.token_hex(4)}"

    def watch(child: str, spec: BucketSpec, keys: str, topic: WatchTopic) -> ChildSpec:
        def make() -> Actor:
            return KVWatchActor(
                ctx.connection,
                spec,
                keys,
                topic=topic,
                connection=ctx.connection_actor,
                kv_timeout=kv_timeout,
            )

        return ChildSpec(child, make, shutdown=kv_timeout + 1.0)

    registry = registry_bucket_spec(ctx.buckets)
    definitions = definitions_bucket_spec(ctx.buckets)

    def tree() -> Actor:
        return Supervisor(
            [
                ChildSpec(
                    "connection",
                    lambda: ConnectionActor(nats, on_connected=ctx.connected),
                    restart=Restart.TEMPORARY,
                    significant=True,
                    shutdown=nats.drain_timeout + 1.0,
                ),
                watch("registry-watch", registry, instance_keys(), ctx.registry),
                watch("definitions-watch", definitions, ">", ctx.definitions),
                ChildSpec("probe", lambda: ProbeActor(ctx)),
                ChildSpec("fleet", lambda: FleetActor(ctx)),
                ChildSpec(
                    "http",
                    lambda: HttpActor(ctx, settings, timeout=timeout, on_listening=on_listening),
                    shutdown=HTTP_SHUTDOWN + 1.0,
                ),
            ],
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        )

    shutdown = nats.drain_timeout + 2 * kv_timeout + HTTP_SHUTDOWN + 5.0
    return ChildSpec(name, tree, shutdown=shutdown)


@dataclass(frozen=True, slots=True)
class RunningMonitor:
    """A started monitor: where its pages are, and its tree."""

    url: str
    ref: ActorRef

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the monitor stops by itself (its connection closed for good)."""
        return await self.ref.wait_stopped()


@asynccontextmanager
async def open_monitor(
    nats: ConnectionSettings,
    settings: WebSettings,
    *,
    namespace: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[RunningMonitor]:
    """Start the monitor in an `ActorSystem` of its own; stop it gracefully on the way out.

    Raises:
        ActorStartError: it could not start (NATS unreachable, the port taken, ...).
    """
    urls: list[str] = []
    spec = web_tree(nats, settings, namespace=namespace, timeout=timeout, on_listening=urls.append)
    async with ActorSystem("aegis-web") as system:
        ref = await system.spawn(spec.start, name=spec.id, shutdown=spec.shutdown)
        yield RunningMonitor(urls[0], ref)
