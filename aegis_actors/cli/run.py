"""`aegis run CONFIG`: start a fleet from a supervisor config file; Ctrl-C stops it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aegis_actors._config_file import ENV_OVERRIDES, load_config
from aegis_actors._connection import redact
from aegis_actors._errors import ConfigError
from aegis_actors._eventloop import run as run_loop
from aegis_actors._runtime import Fleet, run_fleet
from aegis_actors._text import plural
from aegis_actors.cli._client import integer


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="start the services of a config file (Ctrl-C stops them gracefully)",
        description="Start the services a supervisor config file describes. Without "
        "[nats].url an embedded nats-server is started. Environment variables "
        f"{', '.join(ENV_OVERRIDES)} override the file.",
    )
    parser.add_argument("config", help="the TOML config file, e.g. config/showcase.toml")
    parser.add_argument(
        "--check", action="store_true", help="validate the file (and import the classes) only"
    )
    parser.add_argument(
        "--metrics-port",
        type=integer(0, 65535),
        metavar="PORT",
        help="serve Prometheus metrics on this port (/metrics; 0 picks a free one): "
        "sets [metrics] port",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        if args.metrics_port is not None:
            config = config.with_metrics_port(args.metrics_port)
    except ConfigError as exc:
        print(f"aegis run: {exc}", file=sys.stderr)
        return 2
    missing = config.missing_files()
    if missing:
        print(
            f"aegis run: {args.config}: missing {', '.join(missing)}; `aegis auth "
            f"{args.config} --nkeys DIR -o FILE` writes roles and keys",
            file=sys.stderr,
        )
        return 2
    fleet = config.fleet
    count = sum(s.config.instances for s in config.services)
    where = (
        "an embedded nats-server" if fleet.embedded_server else config.connection().shown_servers
    )
    if args.check:
        print(
            f"{args.config}: OK: {plural(len(config.services), 'service')}, "
            f"{plural(count, 'instance')}, against {where}"
        )
        return 0

    async def ready(running: Fleet) -> None:
        names = ", ".join(f"{s.name} x{s.config.instances}" for s in config.services)
        web = f"; web monitor at {running.web_url}" if running.web_url else ""
        if running.metrics_url:
            web += f"; metrics at {running.metrics_url}"
        print(
            f"aegis: {plural(running.instance_count, 'instance')} running ({names}) against "
            f"{redact(running.url)}{web}; Ctrl-C stops them",
            flush=True,
        )

    return run_loop(lambda: run_fleet(config, ready=ready))
