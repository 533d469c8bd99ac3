"""The last act of `make demo`: the same services with least privilege.

`config/secure.toml` run as its comments say, with the keys in a temporary
folder: `aegis auth` writes the roles and one NKey per role, the embedded
nats-server enforces them, each service connects with its own key. A client
places an order; a viewer lists the definitions and is refused a delete at
once; order-service's key cannot register as pricing-service.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Final

from rich.console import Console

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    ManagementClient,
    ServiceError,
    connect,
)
from aegis_actors._auth import Credential, fleet_roles, grants_of, render
from aegis_actors._buckets import Buckets, instance_key, kv_subject
from aegis_actors._config_file import LoadedConfig, LoadedService, ServiceCredentials, load_config
from aegis_actors._connection import barrier
from aegis_actors._denials import Violation, denials_of
from aegis_actors._runtime import start_fleet, stop_fleet
from aegis_actors.cli.auth import nkey_user

SECURE: Final = Path(__file__).resolve().parents[2] / "config" / "secure.toml"


def _secured(folder: Path) -> LoadedConfig:
    """config/secure.toml with its keys and roles in `folder`, on a free port."""
    config = load_config(SECURE, environ={})
    roles = fleet_roles([grants_of(s.cls) for s in config.services])
    credentials = {r.name: Credential(nkey=nkey_user(folder / f"{r.user}.nk")) for r in roles}
    (folder / "auth.conf").write_text(render(roles, credentials))
    embedded = config.fleet.embedded.model_copy(update={"port": 0, "auth": folder / "auth.conf"})
    services = [
        LoadedService(
            s.config.model_copy(
                update={"nats": ServiceCredentials(nkey_seed=folder / f"{s.name}.nk")}
            ),
            s.cls,
        )
        for s in config.services
    ]
    fleet = config.fleet.model_copy(update={"embedded": embedded})
    return LoadedConfig(config.path, fleet, services)


async def secure_tour(console: Console) -> bool:
    console.print(
        "\n[bold cyan]>[/] [bold]Least privilege (config/secure.toml): a key per service, "
        "roles enforced[/]"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _secured(folder)
        async with ActorSystem("secure") as system:
            running = await start_fleet(system, config)
            try:
                as_role = {
                    role: ConnectionSettings(url=running.url, nkey_seed=folder / f"{role}.nk")
                    for role in ("client", "viewer", "order-service")
                }
                async with Client(nats=as_role["client"]) as client:
                    await client.wait_for_instances("order-service", 2, timeout=20.0)
                    order = await client.call(
                        "order-service",
                        "create_order",
                        {"symbol": "ACME", "side": "buy", "quantity": 10},
                    )
                console.print(f"  client   create_order: {order['status']}")
                viewer = await connect(as_role["viewer"])
                try:
                    mgmt = ManagementClient(viewer)
                    page = await mgmt.list_services()
                    console.print(f"  viewer   services.list: {len(page.items)} definitions")
                    started = time.perf_counter()
                    try:
                        await mgmt.request("services", "delete", {"serviceName": "order-service"})
                    except ServiceError as exc:
                        took = (time.perf_counter() - started) * 1000
                        console.print(
                            f"  viewer   services.delete: [red]{exc.status} {exc.code}[/] "
                            f"in {took:.1f} ms (was a 5 s timeout)"
                        )
                    else:
                        raise RuntimeError("the viewer deleted a definition")
                finally:
                    await viewer.close()
                await _impersonation_is_refused(console, as_role["order-service"])
            finally:
                await stop_fleet(system, running)
    return True


async def _impersonation_is_refused(console: Console, settings: ConnectionSettings) -> None:
    """order-service's key writes a pricing-service registry record: the server refuses it."""
    nc = await connect(settings)
    try:
        denials = denials_of(nc)
        assert denials is not None
        refused: list[Violation] = []

        def on_violation(violation: Violation) -> bool:
            refused.append(violation)
            return True

        denials.listen(on_violation)
        forged = kv_subject(
            Buckets().registry, instance_key("pricing-service", "pricing-service-deadbeef")
        )
        await nc.publish(forged, b"{}")
        await barrier(nc)  # behind the publish: its refusal, if any, has arrived
    finally:
        await nc.close()
    verdict = "[red]refused[/]" if refused else "[bold red]ACCEPTED[/]"
    console.print(f"  order-service registers as pricing-service: {verdict} by the server")
    if not refused:
        raise RuntimeError("the server took a forged registry record")
