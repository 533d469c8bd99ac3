"""Denied is fast: how long a refused subject takes to fail, beside an allowed round trip.

Against a nats-server enforcing the roles `aegis auth` writes:
  call():         a viewer's `Client.call()` (403 PERMISSION_DENIED) vs a client's
                  successful call of the same method;
  management:     a viewer's `services.delete` (403) vs its `services.get` of a name
                  that does not exist (404 from aegis-mgmt: a full round trip);
  connect:        a wrong password (refused at once) vs a successful connect.
Goal (issue 14): the denial surfaces well under 100 ms (it was a 5 s timeout).
Run: `python -m bench.denial`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    LogFormat,
    ManagementClient,
    ManagementService,
    NatsServer,
    NatsUnavailableError,
    ServiceActor,
    ServiceError,
    configure_logging,
    connect,
    rpc,
    run,
    start_instance,
)
from aegis_actors._auth import Credential, fleet_roles, grants_of, render
from bench._report import table

ROUNDS = 300
GOAL_MS = 100.0


class Echo(ServiceActor):
    service_name = "echo-service"

    @rpc
    async def echo(self, params: Any) -> Any:
        return params


def password(user: str) -> str:
    return f"bench-{user}"


def settings(url: str, user: str, secret: str | None = None) -> ConnectionSettings:
    return ConnectionSettings(url=url, user=user, password=secret or password(user))


async def timed(action: Callable[[], Awaitable[Any]], expect: str | None) -> list[float]:
    """Milliseconds per `action`; `expect` is the error code it must fail with (None: succeed)."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        try:
            await action()
            code = None
        except ServiceError as exc:
            code = exc.code
        except NatsUnavailableError:
            code = "REFUSED"
        samples.append((time.perf_counter() - started) * 1000)
        assert code == expect, f"expected {expect}, got {code}"
    return samples


def row(measure: str, denied: list[float], allowed: list[float]) -> list[object]:
    p50 = statistics.median(denied)
    p99 = statistics.quantiles(denied, n=100)[98]
    return [
        measure, p50, p99, statistics.median(allowed), f"< {GOAL_MS:g}",
        "ok" if p99 < GOAL_MS else "MISSED",
    ]  # fmt: skip


async def measure(url: str) -> list[list[object]]:
    rows = []
    async with ActorSystem() as system:
        for cls in (ManagementService, Echo):
            nats = settings(url, cls.service_name)
            await start_instance(system, cls, InstanceSettings(nats=nats))
        async with (
            Client(nats=settings(url, "client")) as client,
            Client(nats=settings(url, "viewer")) as viewer,
        ):
            await client.wait_for_instances("echo-service")
            await viewer.wait_for_instances("echo-service")
            denied = await timed(
                lambda: viewer.call("echo-service", "echo", 1, timeout=5), "PERMISSION_DENIED"
            )
            allowed = await timed(lambda: client.call("echo-service", "echo", 1, timeout=5), None)
            rows.append(row("call() refused vs allowed", denied, allowed))
        nc = await connect(settings(url, "viewer"))
        try:
            mgmt = ManagementClient(nc, timeout=5)
            denied = await timed(
                lambda: mgmt.request("services", "delete", {"serviceName": "x-service"}),
                "PERMISSION_DENIED",
            )
            allowed = await timed(
                lambda: mgmt.request("services", "get", {"serviceName": "x-service"}), "NOT_FOUND"
            )
            rows.append(row("management refused vs 404", denied, allowed))
        finally:
            await nc.close()

    async def connect_and_close(secret: str | None) -> None:
        client = await connect(settings(url, "viewer", secret))
        await client.close()

    denied = await timed(lambda: connect_and_close("wrong"), "REFUSED")
    allowed = await timed(lambda: connect_and_close(None), None)
    rows.append(row("connect refused vs accepted", denied, allowed))
    return rows


def main() -> None:
    configure_logging(LogFormat.JSON, "error")
    roles = fleet_roles([grants_of(ManagementService), grants_of(Echo)])
    credentials = {r.name: Credential(password=password(r.user)) for r in roles}
    with NatsServer(extra_config=render(roles, credentials)) as server:
        rows = run(lambda: measure(server.url))
    table(
        f"denied vs allowed, ms ({ROUNDS} each, one at a time, loopback)",
        ["measure", "denied p50", "denied p99", "allowed p50", "goal p99", ""],
        rows,
    )


if __name__ == "__main__":
    main()
