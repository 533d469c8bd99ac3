"""`aegis top`: the fleet, live (refreshing like `top`), from any NATS URL."""

from __future__ import annotations

import argparse
from typing import Any

import anyio
from pydantic_core import to_json
from rich.live import Live

from aegis_actors._eventloop import run
from aegis_actors._text import printable_json
from aegis_actors._top import FleetSampler, render
from aegis_actors.cli._client import client_options, connect_or_report, console, seconds


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "top",
        parents=[client_options()],
        help="a live view of the fleet: instances, status, heartbeat age, call rates",
        description="A live view of the fleet (Ctrl-C quits): per service its definition, "
        "its instances with status, version, heartbeat age, call rate and errors.",
    )
    parser.add_argument(
        "--interval", type=seconds, default=1.0, help="seconds between refreshes (default 1)"
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    async def top() -> int:
        client = await connect_or_report(args)
        if isinstance(client, int):
            return client
        sampler = FleetSampler(client, args.namespace)
        try:
            if args.once or args.json:
                # Two samples an interval apart: rates need a difference.
                await sampler.sample()
                await anyio.sleep(args.interval)
                view = await sampler.sample()
                if args.json:
                    print(printable_json(to_json(view, by_alias=True).decode()))
                else:
                    console().print(render(view))
                return 0
            with Live(render(await sampler.sample()), console=console(), screen=False) as live:
                while True:
                    await anyio.sleep(args.interval)
                    live.update(render(await sampler.sample()))
        finally:
            await client.close()

    return run(top)
