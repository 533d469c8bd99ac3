"""What the web monitor's tests share: a fleet with an admin and a viewer, and an SSE reader.

The fleet runs on a nats-server of its own (users `admin`, allowed everything;
`viewer`, denied publishing the management API's writes; `reader`, allowed
only reads, so not even `$SYS.REQ.USER.INFO`), so a test module can keep one fleet and one monitor for all its
tests without disturbing the session's server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pydantic_core import from_json

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    HeartbeatSettings,
    InstanceSettings,
    ServiceActor,
    rpc,
    start_instance,
)
from aegis_actors._configuration.binding import ConfigurationBindingSettings
from aegis_actors._mgmt.actor import ManagementService
from aegis_actors._nats_server import NatsServer
from aegis_actors._web.monitor import RunningMonitor, open_monitor
from aegis_actors._web.settings import WebSettings

T = TypeVar("T")
ADMIN = ("admin", "admin-secret")
VIEWER = ("viewer", "viewer-secret")
READER = ("reader", "reader-secret")
AUTH_CONFIG = f"""
authorization {{
  users = [
    {{user: {ADMIN[0]}, password: {ADMIN[1]}}}
    {{user: {VIEWER[0]}, password: {VIEWER[1]}, permissions: {{
      publish: {{allow: [">"], deny: ["aegis.mgmt.*.create", "aegis.mgmt.*.update",
                                      "aegis.mgmt.*.delete"]}}
    }}}}
    {{user: {READER[0]}, password: {READER[1]}, permissions: {{
      publish: {{allow: ["aegis.mgmt.*.get", "aegis.mgmt.*.list", "$JS.API.>", "$SRV.>",
                        "_INBOX.>"]}}
    }}}}
  ]
}}
"""


class Quote(ServiceActor):
    service_name = "quote"
    version = "2.1.0"

    @rpc
    async def ok(self) -> str:
        return "ok"

    @rpc
    async def fail(self) -> None:
        raise RuntimeError("on purpose")


class Ledger(ServiceActor):
    """A sticky-active service: one ACTIVE instance (with its fencing revision), one STANDBY."""

    service_name = "ledger"
    sticky_active_group = "main"

    @rpc
    async def ok(self) -> str:
        return "ok"


class Pricing(ServiceActor):
    """Follows the configuration `trading/limits` (which the tests create)."""

    service_name = "pricing"

    async def health(self) -> bool:
        return False  # always UNHEALTHY: the red badge


def user_url(url: str, user: tuple[str, str]) -> str:
    return url.replace("nats://", f"nats://{user[0]}:{user[1]}@")


@dataclass
class WebFleet:
    server: NatsServer
    admin: RunningMonitor
    viewer: RunningMonitor
    system: ActorSystem
    settings: InstanceSettings
    instances: dict[str, list[str]] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        return user_url(self.server.url, ADMIN)


@asynccontextmanager
async def web_fleet() -> AsyncIterator[WebFleet]:
    """A server with users, the management service, three services, and two monitors."""
    with NatsServer(extra_config=AUTH_CONFIG) as server:
        admin = ConnectionSettings(url=user_url(server.url, ADMIN), initial_connect_timeout=5.0)
        viewer = ConnectionSettings(url=user_url(server.url, VIEWER), initial_connect_timeout=5.0)
        settings = InstanceSettings(nats=admin, heartbeat=HeartbeatSettings(ttl=2, interval=0.5))
        web = WebSettings(port=0, stats_interval=0.5)
        async with AsyncExitStack() as stack:
            system = await stack.enter_async_context(ActorSystem("web-fleet"))
            fleet_instances: dict[str, list[str]] = {}
            plans: list[tuple[type[ServiceActor], InstanceSettings]] = [
                (ManagementService, settings),
                (Quote, settings),
                (Quote, settings),
                (Ledger, settings),
                (Ledger, settings),
                (
                    Pricing,
                    settings.model_copy(
                        update={
                            "configuration": ConfigurationBindingSettings(
                                application="trading", name="limits"
                            )
                        }
                    ),
                ),
            ]
            for cls, instance_settings in plans:
                running = await start_instance(system, cls, instance_settings)
                fleet_instances.setdefault(cls.service_name, []).append(running.instance_id)
            admin_monitor = await stack.enter_async_context(open_monitor(admin, web))
            viewer_monitor = await stack.enter_async_context(open_monitor(viewer, web))
            yield WebFleet(server, admin_monitor, viewer_monitor, system, settings, fleet_instances)


@asynccontextmanager
async def in_own_task(context: Callable[[], AbstractAsyncContextManager[T]]) -> AsyncIterator[T]:
    """Enter and leave `context()` in one task of its own.

    A module-scoped fixture's setup and teardown run in different tasks, and a
    task group (an `ActorSystem`'s) must be left in the task that entered it.
    """
    ready: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def hold() -> None:
        try:
            async with context() as value:
                ready.set_result(value)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
                return
            raise

    task = asyncio.create_task(hold())
    try:
        yield await ready
    finally:
        stop.set()
        await task


class EventReader:
    """Reads a server-sent event stream: `next()` is the next `(event, data)`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> tuple[str, Any]:
        event, data = "message", []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if not line:
                if data:
                    return event, from_json("\n".join(data))
                event = "message"
                continue
            if line.startswith((":", "retry:")):
                continue
            name, _, value = line.partition(": ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)

    async def until(self, event: str, check: Any = None) -> Any:
        """The data of the next `event` for which `check(data)` holds."""
        while True:
            name, data = await self.next()
            if name == event and (check is None or check(data)):
                return data
