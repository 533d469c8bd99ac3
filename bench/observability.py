"""What observability costs: one endpoint with metrics off, on, and with tracing too, same run.

Four responder processes serve the same trivial `@rpc` (each in its own
namespace): one with metrics and tracing off, one with `/metrics` served
(latency histograms recorded), one with metrics and OpenTelemetry spans
(a SERVER span per request, `[tracing] exporter = "none"`: spans are made,
batched and dropped), and the same with `sample_ratio = 0.1`. The load
comes from this process, rounds interleaved so a busy machine's drift
hits all four; besides the rate, each
responder's CPU time per request (from /proc) says what the work costs
whatever else runs.
Goal (issue 16): metrics >= 95% of the off rate, metrics + tracing >= 85%.
Run: `python -m bench.observability`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import nats

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    LogFormat,
    NatsServer,
    Subjects,
    TracingSettings,
    configure_logging,
    enable_tracing,
    run,
    serve_metrics,
    start_instance,
)
from aegis_actors._requester import Requester
from bench._load import Run, load, median_run
from bench._report import ratio, table
from bench.rpc import BODY, TIMEOUT, Echo  # the same endpoint and load as bench/rpc.py

KINDS = ("off", "metrics", "traced", "sampled")
PLAN = ((1, 2_000), (10, 10_000), (100, 20_000))  # (in flight, requests)
ROUNDS = 3


def namespace(kind: str) -> str:
    return f"obs{KINDS.index(kind)}"  # same length: same subjects' cost


async def serve(kind: str, url: str) -> None:
    settings = InstanceSettings(
        nats=ConnectionSettings(url=url), namespace=namespace(kind), registration=False
    )
    async with ActorSystem() as system:
        if kind == "off":
            await start_instance(system, Echo, settings)
            print("ready", flush=True)
            await anyio.sleep_forever()
        if kind in ("traced", "sampled"):
            from aegis_actors._telemetry.setup import ServiceProviders

            ratio = 1.0 if kind == "traced" else 0.1
            providers = ServiceProviders(TracingSettings(exporter="none", sample_ratio=ratio))
            enable_tracing(providers, sample_ratio=providers.sample_ratio)
        async with serve_metrics(port=0):
            await start_instance(system, Echo, settings)
            print("ready", flush=True)
            await anyio.sleep_forever()


def responder(kind: str, url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.observability", "serve", kind, url], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"{kind} responder did not start")
    return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    url: str, pids: dict[str, int]
) -> tuple[dict[tuple[str, int], list[Run]], dict[tuple[str, int], list[float]]]:
    client = await nats.connect(url)
    requester = Requester(client)
    await requester.start()
    subjects = {kind: Subjects(namespace(kind)).rpc("bench-echo", "echo") for kind in KINDS}
    runs: dict[tuple[str, int], list[Run]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    for subject in subjects.values():  # warm-up
        await load(lambda s=subject: requester.request(s, BODY, timeout=TIMEOUT), 2_000, 10)
    for _ in range(ROUNDS):
        for in_flight, requests in PLAN:
            for kind, subject in subjects.items():

                async def send(s: str = subject) -> None:
                    await requester.request(s, BODY, timeout=TIMEOUT)

                before = cpu_seconds(pids[kind])
                done = await load(send, requests, in_flight)
                spent = cpu_seconds(pids[kind]) - before
                runs.setdefault((kind, in_flight), []).append(done)
                cpu.setdefault((kind, in_flight), []).append(spent / done.requests * 1e6)
    await client.close()
    return runs, cpu


def main() -> None:
    with NatsServer() as server:
        processes = {kind: responder(kind, server.url) for kind in KINDS}
        try:
            pids = {kind: p.pid for kind, p in processes.items()}
            runs, cpu = run(lambda: measure(server.url, pids), use_uvloop=False)
        finally:
            for process in processes.values():
                process.kill()
                process.wait()
    rows: list[list[object]] = []
    for in_flight, _ in PLAN:
        off, metrics, traced, sampled = (median_run(runs[kind, in_flight]) for kind in KINDS)
        us = {kind: sorted(cpu[kind, in_flight])[ROUNDS // 2] for kind in KINDS}
        rows.append([
            in_flight, off.rate, ratio(metrics.rate, off.rate), ratio(traced.rate, off.rate),
            ratio(sampled.rate, off.rate),
            us["off"], us["metrics"], us["traced"], us["sampled"],
        ])  # fmt: skip
    table(
        f"One endpoint: rate of metrics / metrics + tracing (every request, 10% sampled) "
        f"against off (own processes; median of {ROUNDS} interleaved rounds; CPU = the "
        f"responder's per request)",
        ["in flight", "off req/s", "metrics", "traced", "traced 10%",
         "off CPU us", "metrics CPU us", "traced CPU us", "10% CPU us"],
        rows,
    )  # fmt: skip
    print("goal: metrics >= 95% of off, metrics + tracing >= 85% of off")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        configure_logging(LogFormat.JSON, "warning")
        run(lambda: serve(sys.argv[2], sys.argv[3]), use_uvloop=False)
    else:
        main()
