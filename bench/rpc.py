"""RPC serving: a trivial ServiceActor method vs a bare nats-py responder, same run.

Each responder runs in its own process (as it would in production), the load
comes from this process through one shared reply inbox, and both sides face
the same load at 1, 10 and 100 requests in flight.
Goal (issue 3): >= 70% of the bare throughput, p99 within 1.2x.
Run: `python -m bench.rpc` (asyncio, then uvloop on both sides when installed).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anyio
import nats

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    LogFormat,
    NatsServer,
    ServiceActor,
    Subjects,
    configure_logging,
    rpc,
    run,
    start_instance,
)
from aegis_actors._eventloop import uvloop_available
from aegis_actors._requester import Requester
from bench._load import Run, load, median_run
from bench._report import ratio, table

BARE_SUBJECT = "bench.bare.echo"
AEGIS_SUBJECT = Subjects().rpc("bench-echo", "echo")
BODY = b'{"symbol": "ACME", "quantity": 100, "side": "buy"}'
PLAN = ((1, 3_000), (10, 15_000), (100, 30_000))  # (in flight, requests)
ROUNDS = 3
TIMEOUT = 5.0


class Echo(ServiceActor):
    service_name = "bench-echo"

    @rpc
    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return params


async def serve_bare(url: str) -> None:
    client = await nats.connect(url)

    async def respond(msg: Any) -> None:
        await client.publish(msg.reply, msg.data)

    await client.subscribe(BARE_SUBJECT, queue="bare", cb=respond)
    await client.flush()
    print("ready", flush=True)
    await anyio.sleep_forever()


async def serve_aegis(url: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=url), registration=False)
    async with ActorSystem() as system:
        await start_instance(system, Echo, settings)
        print("ready", flush=True)
        await anyio.sleep_forever()


def responder(kind: str, url: str, uvloop: bool) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.rpc", "serve", kind, url, "uvloop" if uvloop else "asyncio"],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"{kind} responder did not start")
    return process


async def measure(url: str) -> dict[tuple[str, int], list[Run]]:
    """Rounds of bare, then aegis, at each load: drift on a busy machine hits both."""
    client = await nats.connect(url)
    requester = Requester(client)
    await requester.start()
    subjects = {"bare": BARE_SUBJECT, "aegis": AEGIS_SUBJECT}
    runs: dict[tuple[str, int], list[Run]] = {}
    for subject in subjects.values():  # warm-up
        await load(lambda s=subject: requester.request(s, BODY, timeout=TIMEOUT), 2_000, 10)
    for _ in range(ROUNDS):
        for in_flight, requests in PLAN:
            for kind, subject in subjects.items():

                async def send(s: str = subject) -> None:
                    await requester.request(s, BODY, timeout=TIMEOUT)

                runs.setdefault((kind, in_flight), []).append(await load(send, requests, in_flight))
    await client.close()
    return runs


def compare(url: str, uvloop: bool) -> list[list[object]]:
    processes = [responder(kind, url, uvloop) for kind in ("bare", "aegis")]
    try:
        runs = run(lambda: measure(url), use_uvloop=uvloop)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    rows: list[list[object]] = []
    for in_flight, _ in PLAN:
        bare, aegis = (median_run(runs[kind, in_flight]) for kind in ("bare", "aegis"))
        rows.append([
            "uvloop" if uvloop else "asyncio", in_flight,
            aegis.rate, bare.rate, ratio(aegis.rate, bare.rate),
            aegis.p50, bare.p50, aegis.p99, bare.p99, f"{aegis.p99 / bare.p99:.2f}x",
        ])  # fmt: skip
    return rows


def main() -> None:
    with NatsServer() as server:
        rows = compare(server.url, uvloop=False)
        if uvloop_available():
            rows += compare(server.url, uvloop=True)
    table(
        f"RPC: ServiceActor method vs bare nats-py responder (own processes; median of "
        f"{ROUNDS} interleaved rounds)",
        ["loop", "in flight", "aegis req/s", "bare req/s", "ratio", "aegis p50 us",
         "bare p50 us", "aegis p99 us", "bare p99 us", "p99 x"],
        rows,
    )  # fmt: skip
    print("goal: ratio >= 70%, p99 x <= 1.2")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        configure_logging(LogFormat.JSON, "warning")
        serve = serve_bare if sys.argv[2] == "bare" else serve_aegis
        run(lambda: serve(sys.argv[3]), use_uvloop=sys.argv[4] == "uvloop")
    else:
        main()
