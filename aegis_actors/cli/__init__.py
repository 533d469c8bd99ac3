"""The `aegis` command line: one module per command group, wired here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aegis_actors import __version__
from aegis_actors._logs import LEVELS, LogFormat, configure_logging
from aegis_actors.cli import (
    apps,
    auth,
    call,
    configs,
    events,
    instances,
    run,
    server,
    services,
    top,
    web,
)

_COMMANDS = (run, call, server, auth, services, instances, apps, configs, events, top, web)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis",
        description="aegis_actors: run and manage actor services over NATS.",
    )
    parser.add_argument("--version", action="version", version=f"aegis-actors {__version__}")
    parser.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=LogFormat.HUMAN.value,
        help="log lines for people (default) or JSON lines for machines",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LEVELS,
        default=None,
        help=f"{', '.join(LEVELS)} (default: info; warning for client commands)",
    )
    parser.set_defaults(log_level_default="info")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aegis` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(LogFormat(args.log_format), args.log_level or args.log_level_default)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
