"""Runs one instance of a tiny service until killed: the SIGKILL tests' victim.

Usage: python tests/instance_process.py URL NAMESPACE TTL INTERVAL [GROUP]
Prints the instance id once registered, then serves until the process dies.
With GROUP the instance joins that sticky-active group; its leadership key
has the same TTL and is renewed every INTERVAL (margin: INTERVAL too).
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    HeartbeatSettings,
    InstanceSettings,
    LeadershipSettings,
    LogFormat,
    ServiceActor,
    configure_logging,
    rpc,
    start_instance,
)


class Victim(ServiceActor):
    service_name = "victim"

    @rpc
    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return params


async def main(url: str, namespace: str, ttl: int, interval: float, group: str | None) -> None:
    configure_logging(LogFormat.JSON, "warning")  # stderr: stdout carries the instance id
    settings = InstanceSettings(
        nats=ConnectionSettings(url=url),
        namespace=namespace,
        heartbeat=HeartbeatSettings(ttl=ttl, interval=interval),
        sticky_active_group=group,
        leadership=LeadershipSettings(ttl=ttl, interval=interval, margin=interval),
    )
    async with ActorSystem() as system:
        running = await start_instance(system, Victim, settings)
        print(running.instance_id, flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    group = sys.argv[5] if len(sys.argv) > 5 else None
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), group)
