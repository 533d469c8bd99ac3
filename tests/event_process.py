"""Runs one `ledger` instance (`IdempotentLedger`) whose handler hangs: the SIGKILL tests' victim.

Usage: python tests/event_process.py URL NAMESPACE
Prints the instance id once started, then serves until the process dies.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    LogFormat,
    configure_logging,
    start_instance,
)
from tests.event_services import IdempotentLedger


async def main(url: str, namespace: str) -> None:
    configure_logging(LogFormat.JSON, "warning")  # stderr: stdout carries the instance id
    settings = InstanceSettings(
        nats=ConnectionSettings(url=url),
        namespace=namespace,
        registration=False,
        settings={"hang": True},
    )
    async with ActorSystem() as system:
        running = await start_instance(system, IdempotentLedger, settings)
        print(running.instance_id, flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
