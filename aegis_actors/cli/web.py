"""`aegis web`: serve the web monitor (a live dashboard of the fleet) until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import anyio

from aegis_actors._errors import ActorStartError, NatsUnavailableError
from aegis_actors._eventloop import run
from aegis_actors._web.settings import DEFAULT_HOST, DEFAULT_PORT, WebSettings
from aegis_actors.cli._client import (
    EXIT_FAILED,
    EXIT_NO_NATS,
    EXIT_USAGE,
    client_options,
    connection_settings,
    integer,
    seconds,
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "web",
        parents=[client_options()],
        help="serve the web monitor: the fleet live, definitions and configurations",
        description="Serve the web monitor (Ctrl-C stops it): instance cards that change as "
        "the registry does, service and instance pages with their $SRV.STATS, and forms "
        "for definitions and configurations. Its NATS credentials stay in this process.",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; the monitor "
        "has no login of its own)",
    )
    parser.add_argument(
        "--port",
        type=integer(0, 65535),
        default=DEFAULT_PORT,
        help=f"HTTP port, 0 for a free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--stats-interval",
        type=seconds,
        default=2.0,
        help="seconds between two $SRV.STATS samples while a page is open (default 2)",
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        from aegis_actors._web.monitor import open_monitor
    except ImportError as exc:
        print(
            f"aegis web: needs the 'web' extra ({exc.name} is missing): "
            "pip install 'aegis-actors[web]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    settings = WebSettings(host=args.host, port=args.port, stats_interval=args.stats_interval)
    nats = connection_settings(args)
    where = ", ".join(nats.servers) + (f" (namespace {args.namespace})" if args.namespace else "")

    async def web() -> int:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            try:
                async with open_monitor(
                    nats, settings, namespace=args.namespace, timeout=args.timeout
                ) as monitor:
                    print(
                        f"aegis web: serving {monitor.url} for the fleet at {where}; "
                        "Ctrl-C stops it",
                        flush=True,
                    )
                    async with anyio.create_task_group() as tg:

                        async def stopped() -> None:
                            await monitor.wait_stopped()
                            tg.cancel_scope.cancel()

                        tg.start_soon(stopped)
                        async for _ in signals:
                            break  # then the monitor stops gracefully
                        tg.cancel_scope.cancel()
                    if not monitor.ref.is_alive:
                        print("aegis web: the NATS connection closed for good", file=sys.stderr)
                        return EXIT_NO_NATS
            except ActorStartError as exc:
                cause: BaseException = exc
                while isinstance(cause, ActorStartError):
                    cause = cause.reason
                print(f"aegis web: {cause}", file=sys.stderr)
                return EXIT_NO_NATS if isinstance(cause, NatsUnavailableError) else EXIT_FAILED
        return 0

    return run(web)
