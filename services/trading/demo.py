"""The showcase tour: `make demo`, or `python -m services.trading.demo [--url URL]`.

Without `--url` it starts the fleet of `config/showcase.toml` in this process
(with an embedded nats-server on a free port, and the web monitor, whose URL it
prints), tours it, and stops it (from a terminal it keeps both running until
Ctrl-C, so the monitor can be explored). With
`--url` it tours a fleet already running there (`aegis run
config/showcase.toml` in another terminal). The tour defines the services,
manages one more definition through its whole life (create, get, update, a
stale update refused, delete), places orders through discovery, starts one
more order-service instance in a separate process, kills it with SIGKILL in
the middle of the traffic, and shows that every call still succeeds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
from anyio.abc import Process
from rich.console import Console
from rich.table import Table

from aegis_actors import (
    ActorSystem,
    Client,
    LogFormat,
    ManagementClient,
    ServiceError,
    StartChild,
    Subjects,
    TerminateChild,
    WhichChildren,
    configure_logging,
    connect,
    run,
)
from aegis_actors._config_file import EmbeddedServerSettings, LoadedConfig, load_config
from aegis_actors._instance_tree import instance_spec
from aegis_actors._nats_server import port_is_free
from aegis_actors._runtime import Fleet, start_fleet, stop_fleet
from aegis_actors._web.settings import DEFAULT_PORT, WebSettings
from aegis_actors._wire import decode_reply

ROOT: Final = Path(__file__).resolve().parents[2]
SHOWCASE: Final = ROOT / "config" / "showcase.toml"
ORDERS: Final = [
    ("ACME", "buy", 100),
    ("GLOBEX", "sell", 250),
    ("INITECH", "buy", 1_000),
    ("UMBRELLA", "buy", 40),
    ("ACME", "sell", 30),
    ("GLOBEX", "buy", 1_000_000),  # far over the risk limit: rejected
]
DEFINITIONS: Final = [
    ("order-service", "trading-desk", "Places orders: prices them and has risk approve them."),
    ("pricing-service", "market-data", "Quotes for the symbols we trade."),
    ("risk-service", "risk-team", "Order and position limits."),
]

console = Console(highlight=False)


def step(text: str) -> None:
    console.print(f"\n[bold cyan]>[/] [bold]{text}[/]")


async def define_services(mgmt: ManagementClient) -> None:
    step("Define the services (aegis.mgmt.services.create, any NATS client could send it)")
    for name, owner, description in DEFINITIONS:
        try:
            created = await mgmt.create_service(
                name, owner=owner, version="1.0.0", description=description
            )
            console.print(f"  created {name} (revision {created.revision})")
        except ServiceError as exc:
            if exc.code != "ALREADY_EXISTS":
                raise
            console.print(f"  {name} was already defined")


async def definition_lifecycle(mgmt: ManagementClient) -> None:
    """Create, read, update and delete a definition; a stale update is refused."""
    step("One definition's life: create, get, update, a stale update refused, delete")
    name = "audit-service"
    try:
        created = await mgmt.create_service(
            name, owner="compliance", version="1.0.0", description="Keeps an audit trail."
        )
    except ServiceError as exc:  # left by an earlier tour of the same fleet
        if exc.code != "ALREADY_EXISTS":
            raise
        await mgmt.delete_service(name)
        created = await mgmt.create_service(
            name, owner="compliance", version="1.0.0", description="Keeps an audit trail."
        )
    console.print(f"  create  {name}: 201, revision {created.revision}")
    got = await mgmt.get_service(name)
    definition = got.definition
    console.print(
        f"  get     {name}: owner {definition.owner}, version {definition.version}, "
        f"revision {got.revision}"
    )
    updated = await mgmt.update_service(name, got.revision, version="1.1.0")
    console.print(
        f"  update  {name} at revision {got.revision}: version "
        f"{updated.definition.version}, revision {updated.revision}"
    )
    try:
        await mgmt.update_service(name, got.revision, version="1.2.0")
    except ServiceError as exc:
        if exc.code != "REVISION_CONFLICT":
            raise
        console.print(
            f"  update  {name} at revision {got.revision} again: [red]{exc.status} "
            f"{exc.code}[/], it is at {exc.details['currentRevision']}"
        )
    else:
        raise RuntimeError("a stale update was accepted")
    await mgmt.delete_service(name, updated.revision)
    try:
        await mgmt.get_service(name)
    except ServiceError as exc:
        console.print(f"  delete  {name} at revision {updated.revision}: 204; get: {exc.status}")
    else:
        raise RuntimeError("a deleted definition is still there")


async def show_instances(mgmt: ManagementClient) -> int:
    step("The instances that registered themselves (aegis.mgmt.instances.list)")
    table = Table("service", "instance", "status", "version")
    instances = await mgmt.list_instances()
    for instance in instances:
        table.add_row(
            instance.service_name, instance.instance_id, instance.status.value, instance.version
        )
    console.print(table)
    return len(instances)


async def place_orders(client: Client) -> list[dict[str, Any]]:
    step("Place orders (order-service prices each with pricing-service, risk-service approves)")
    table = Table("symbol", "side", "quantity", "price", "status", "reason")
    placed = []
    for symbol, side, quantity in ORDERS:
        order = await client.call(
            "order-service",
            "create_order",
            {"symbol": symbol, "side": side, "quantity": quantity},
            timeout=5.0,
        )
        placed.append(order)
        colour = "green" if order["status"] == "accepted" else "red"
        table.add_row(
            symbol, side, f"{quantity:,}", f"{order['price']:.2f}",
            f"[{colour}]{order['status']}[/]", order["reason"],
        )  # fmt: skip
    console.print(table)
    return placed


@asynccontextmanager
async def extra_instance(url: str, namespace: str) -> AsyncIterator[Process]:
    """One more order-service instance in its own process (the one we will kill)."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "extra.toml"
        config.write_text(
            f'name = "extra"\nnamespace = "{namespace}"\n[nats]\nurl = "{url}"\n'
            '[[services]]\nclass = "services.trading.order:OrderService"\n'
            "[services.heartbeat]\nttl = 10\ninterval = 3\n"
        )
        command = [sys.executable, "-m", "aegis_actors", "--log-level", "error", "run", str(config)]
        async with await anyio.open_process(command, cwd=ROOT, stderr=None) as process:
            try:
                yield process
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def failover(client: Client, url: str, namespace: str) -> tuple[list[dict[str, Any]], int]:
    step("Failover: start one more order-service instance in its own process, then SIGKILL it")
    async with extra_instance(url, namespace) as process:
        await client.wait_for_instances("order-service", 4, timeout=20.0)
        console.print(f"  4 order-service instances now; killing process {process.pid}")
        process.send_signal(signal.SIGKILL)
        await process.wait()
    before = client.statistics()
    placed = []
    total = 20
    for n in range(total):
        symbol, side, quantity = ORDERS[n % 5]
        placed.append(
            await client.call(
                "order-service",
                "create_order",
                {"symbol": symbol, "side": side, "quantity": quantity},
                timeout=5.0,
            )
        )
    retries = client.statistics().retries - before.retries
    console.print(
        f"  [green]{len(placed)}/{total} calls succeeded[/] right after the kill; "
        f"{retries} went to the dead instance first, got 'no responders' and were "
        "retried on another one within their deadline"
    )
    return placed, retries


async def positions(client: Client) -> None:
    step("Positions, as risk-service saw the order events (events.order.created)")
    table = Table("symbol", "quantity", "notional")
    for position in await client.call("risk-service", "get_positions", {}):
        table.add_row(
            position["symbol"], f"{position['quantity']:,}", f"{position['notional']:,.2f}"
        )
    console.print(table)


async def restart_risk(client: Client, system: ActorSystem, fleet: Fleet) -> None:
    step("Restart every risk-service instance: positions come back from the order stream")
    before = await client.call("risk-service", "get_positions", {})
    assert fleet.root is not None
    (risk,) = [c for c in await fleet.root.ask(WhichChildren()) if c.id == "risk-service"]
    plans = fleet.plans["risk-service"]
    for plan in plans:
        await risk.ref.ask(TerminateChild(plan.instance_id), timeout=30.0)
    console.print(f"  stopped all {len(plans)} risk-service instances (positions live in memory)")
    for plan in plans:
        await risk.ref.ask(StartChild(instance_spec(plan)), timeout=30.0)
    namespace = fleet.config.fleet.namespace
    with anyio.fail_after(20):
        for plan in plans:
            # Each instance replays events.order.created (a durable broadcast handler).
            subject = Subjects(namespace).instance(plan.instance_id, "get_positions")
            while (
                decode_reply((await client.nats.request(subject, b"{}", timeout=5)).data)[0]
                != before
            ):
                await anyio.lowlevel.checkpoint()
    console.print(
        f"  [green]started again: both rebuilt the same {len(before)} positions[/] from the "
        "events.order.created stream (durable events, replayed from the start)"
    )


async def tour(
    url: str,
    namespace: str = "",
    restart: Callable[[Client], Awaitable[None]] | None = None,
) -> bool:
    nats = await connect(_settings(url))
    try:
        mgmt = ManagementClient(nats, namespace=namespace)
        async with Client(url=url, namespace=namespace) as client:
            for service, count in (("order-service", 3), ("pricing-service", 2),
                                   ("risk-service", 2)):  # fmt: skip
                await client.wait_for_instances(service, count, timeout=20.0)
            await define_services(mgmt)
            await definition_lifecycle(mgmt)
            await show_instances(mgmt)
            placed = await place_orders(client)
            after_kill, retries = await failover(client, url, namespace)
            await positions(client)
            if restart is not None:
                await restart(client)
    finally:
        await nats.close()
    step("What the tour did")
    orders = placed + after_kill
    accepted = sum(1 for o in orders if o["status"] == "accepted")
    console.print(
        f"  defined {len(DEFINITIONS)} services, and took one more through create, get,\n"
        "  update, a refused stale update and delete;\n"
        f"  placed {len(orders)} orders "
        f"({accepted} accepted, {len(orders) - accepted} rejected by risk):\n"
        f"  {len(placed)} one by one, then {len(after_kill)} right after an instance was "
        f"killed\n  (none failed, {retries} retried); all over plain NATS request-reply."
    )
    return True


def _settings(url: str) -> Any:
    from aegis_actors import ConnectionSettings

    return ConnectionSettings(url=url, initial_connect_timeout=10.0)


async def own_fleet(port: int, stay: bool) -> bool:
    config = load_config(SHOWCASE, environ={})
    # The monitor on its usual port when that is free (a second demo takes another).
    web = WebSettings(port=DEFAULT_PORT if port_is_free(DEFAULT_PORT) else 0)
    fleet = config.fleet.model_copy(
        update={"embedded": EmbeddedServerSettings(port=port), "web": web}
    )
    config = LoadedConfig(config.path, fleet, config.services)
    step(f"Start the showcase fleet ({SHOWCASE.relative_to(ROOT)}) with an embedded nats-server")
    async with ActorSystem("showcase") as system:
        running = await start_fleet(system, config)
        console.print(
            f"  {running.instance_count} instances of {len(running.plans)} services "
            f"on {running.url}"
        )
        console.print(f"  web monitor: [bold]{running.web_url}[/] (open it to watch the tour)")
        try:
            ok = await tour(
                running.url, restart=lambda client: restart_risk(client, system, running)
            )
            if stay:
                step(f"The fleet keeps running: explore it at {running.web_url}; Ctrl-C stops it")
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        break
            return ok
        finally:
            step("Stop the fleet (each instance deregisters, drains and closes)")
            await stop_fleet(system, running)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="tour a fleet already running at this NATS URL")
    parser.add_argument("--namespace", default="", help="that fleet's namespace")
    parser.add_argument(
        "--port", type=int, default=0, help="embedded server port (default: a free one)"
    )
    parser.add_argument(
        "--stay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the fleet and its web monitor running after the tour, until Ctrl-C "
        "(default: when run from a terminal)",
    )
    args = parser.parse_args()
    stay = sys.stdin.isatty() if args.stay is None else args.stay
    configure_logging(LogFormat.HUMAN, "error")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        ok = run(lambda: tour(args.url, args.namespace) if args.url else own_fleet(args.port, stay))
        if ok and not args.url:
            from services.trading.secure_tour import secure_tour

            ok = run(lambda: secure_tour(console))
    except ServiceError as exc:
        console.print(f"[red]the tour failed: {exc}[/]")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
