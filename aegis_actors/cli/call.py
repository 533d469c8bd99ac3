"""`aegis call SERVICE METHOD [JSON]`: call a method as a service would (discovery, failover)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic_core import from_json, to_json

from aegis_actors._client import Client
from aegis_actors._errors import AegisError, NatsUnavailableError, ServiceError
from aegis_actors._eventloop import run
from aegis_actors._text import printable, printable_json
from aegis_actors.cli._client import (
    EXIT_FAILED,
    EXIT_NO_NATS,
    EXIT_USAGE,
    client_options,
    exit_code,
    print_json,
    report_error,
    settings_or_exit,
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "call",
        parents=[client_options()],
        help="call a service's method and print what it answers",
        description="Call METHOD of SERVICE with JSON parameters, through discovery: a "
        "healthy instance is picked, and one that does not answer is skipped.",
    )
    parser.add_argument("service", help="the service, e.g. order-service")
    parser.add_argument("method", help="the method, e.g. create_order")
    parser.add_argument("params", nargs="?", default=None, help="JSON parameters (default none)")
    parser.add_argument(
        "--idempotent", action="store_true", help="the call may run twice: retry after a timeout"
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    params: Any = None
    if args.params is not None:
        try:
            params = from_json(args.params, allow_inf_nan=False)
        except ValueError as exc:
            print(f"aegis call: PARAMS is not JSON: {exc}", file=sys.stderr)
            return EXIT_USAGE

    async def call() -> int:
        settings = settings_or_exit(args)
        if isinstance(settings, int):
            return settings
        try:
            async with Client(nats=settings, namespace=args.namespace) as client:
                reply = await client.call(
                    args.service, args.method, params,
                    timeout=args.timeout, idempotent=args.idempotent, envelope=True,
                )  # fmt: skip
        except ServiceError as exc:
            report_error(args, exc)
            return exit_code(exc)
        except ValueError as exc:  # a bad service or method name, or timeout
            print(f"aegis call: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except NatsUnavailableError as exc:
            print(f"aegis: {exc}", file=sys.stderr)
            return EXIT_NO_NATS
        except AegisError as exc:
            print(f"aegis: {printable(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
        if args.json:
            print_json(reply)
        else:
            print(printable_json(to_json(reply.get("data"), indent=2).decode()))
        return 0

    return run(call)
