"""The web monitor at 1,000 instances, measured in a real browser (headless Chromium).

  render:  from the page's navigation start to 1,000 instance cards in the document
           (HTML, script, event stream, snapshot, cards), in the browser's own clock;
  change:  a registry write (a status flip) to the card showing it, idle and while 100
           other records change per second (the heartbeats of 1,000 instances every 10 s);
           Python and the page read the same wall clock;
  idle:    the web process's CPU (`aegis web`, its own process) over 10 s, with no page
           open, then with the 1,000-card page open and nothing changing.
Goals (issue 18): 1,000 instances render in under 2 s; a registry change reaches the page
in under 1 s at that size; the monitor's CPU stays low while idle (ceilings below: 1% of
one core with no page, 5% with a page open, which samples $SRV.STATS every 2 s).
The registry records are simulated (written straight into the registry bucket); they are
the same records 1,000 instances would write. Run: `python -m bench.web`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Final

import anyio
from anyio.abc import Process

from aegis_actors import InstanceStatus, ServiceInstance
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._connection import ConnectionSettings, connect
from aegis_actors._eventloop import run
from aegis_actors._kv import KVBucket
from aegis_actors._logs import LogFormat, configure_logging
from aegis_actors._models import utc_now
from aegis_actors._nats_server import NatsServer
from aegis_actors._registry.store import registry_bucket_spec
from bench._report import ratio, table
from tests.browser_support import chromium, why_no_browser

INSTANCES: Final = 1_000
SERVICES: Final = 20
RENDERS: Final = 3
CHANGES: Final = 20
RENDER_GOAL: Final = 2.0
CHANGE_GOAL: Final = 1.0
IDLE_GOAL: Final = 0.01
IDLE_PAGE_GOAL: Final = 0.05
CHURN_PER_SECOND: Final = 100

RENDERED_SCRIPT: Final = """
window.rendered = new Promise((resolve) => {
  const check = () => {
    if (document.querySelectorAll("article.card").length >= %d) {
      resolve(performance.now());
      return true;
    }
    return false;
  };
  const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true });
});
"""
WATCH_SCRIPT: Final = """([id, status]) => {
  window.seen = new Promise((resolve) => {
    const done = () => {
      const badge = document.querySelector(`li[data-instance="${id}"] .badge`);
      return badge && badge.textContent === status;
    };
    const observer = new MutationObserver(() => {
      if (done()) { observer.disconnect(); resolve(Date.now()); }
    });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  });
}"""


def record(service: str, n: int, status: InstanceStatus = InstanceStatus.ACTIVE) -> bytes:
    sticky = service.endswith("0")  # every tenth service (svc-00, svc-10) is sticky-active
    return (
        ServiceInstance(
            service_name=service,
            instance_id=instance_id(service, n),
            version="1.4.2",
            status=status if not (sticky and n) else InstanceStatus.STANDBY,
            sticky_active_group="main" if sticky else None,
            leadership_revision=7 if sticky and not n else None,
            last_heartbeat=utc_now(),
            metadata={"host": "bench", "pid": 1000 + n},
        )
        .model_dump_json(exclude_none=True)
        .encode()
    )


def instance_id(service: str, n: int) -> str:
    return f"{service}-{n:08x}"


def fleet() -> list[tuple[str, int]]:
    per = INSTANCES // SERVICES
    return [(f"svc-{s:02d}", n) for s in range(SERVICES) for n in range(per)]


async def fill_registry(bucket: KVBucket) -> None:
    async with anyio.create_task_group() as tg:
        limit = anyio.Semaphore(50)
        for service, n in fleet():

            async def put(service: str = service, n: int = n) -> None:
                async with limit:
                    await bucket.put(
                        instance_key(service, instance_id(service, n)), record(service, n)
                    )

            tg.start_soon(put)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu(pid: int, seconds: float = 10.0) -> float:
    """Share of one core the process used over `seconds`."""
    before, start = cpu_seconds(pid), time.monotonic()
    await anyio.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


async def start_web(url: str) -> tuple[Process, str]:
    command = [sys.executable, "-m", "aegis_actors", "--log-level", "error", "web",
               "--url", url, "--port", "0"]  # fmt: skip
    process = await anyio.open_process(command)
    assert process.stdout is not None
    line = b""
    with anyio.fail_after(20):
        while not line.endswith(b"\n"):
            line += await process.stdout.receive(1)
    return process, line.decode().split()[3]


async def measure(server: NatsServer) -> dict[str, Any]:
    client = await connect(ConnectionSettings(url=server.url))
    bucket = await KVBucket.ensure(client.jetstream(), registry_bucket_spec(Buckets()))
    await fill_registry(bucket)
    process, url = await start_web(server.url)
    figures: dict[str, Any] = {}
    try:
        await anyio.sleep(1.0)  # let the start settle before measuring idle
        figures["idle"] = await idle_cpu(process.pid)
        async with chromium() as browser:
            renders = []
            for _ in range(RENDERS):
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                await page.add_init_script(RENDERED_SCRIPT % INSTANCES)
                await page.goto(url)
                renders.append(await page.evaluate("window.rendered") / 1000)
                await context.close()
            figures["render"] = renders
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.goto(url)
            await page.wait_for_function(
                f"() => document.querySelectorAll('article.card').length >= {INSTANCES}"
            )
            await anyio.sleep(1.0)
            figures["idle_page"] = await idle_cpu(process.pid)
            figures["change"] = await changes(page, bucket, churn=False)
            figures["change_churn"] = await changes(page, bucket, churn=True)
            await context.close()
    finally:
        process.terminate()
        await process.wait()
        await client.close()
    return figures


async def changes(page: Any, bucket: KVBucket, *, churn: bool) -> list[float]:
    """Seconds from a status flip in the registry to the card showing it."""
    members = fleet()
    latencies = []
    async with anyio.create_task_group() as tg:
        if churn:

            async def heartbeats() -> None:
                n = 0
                while True:
                    service, k = members[n % len(members)]
                    await bucket.put(
                        instance_key(service, instance_id(service, k)), record(service, k)
                    )
                    n += 1
                    await anyio.sleep(1 / CHURN_PER_SECOND)

            tg.start_soon(heartbeats)
        for n in range(CHANGES):
            plain = [f"svc-{s:02d}" for s in range(SERVICES) if s % 10]  # not the sticky ones
            service, k = plain[n % len(plain)], n
            status = InstanceStatus.UNHEALTHY if churn == (n % 2 == 0) else InstanceStatus.ACTIVE
            current = await page.evaluate(
                'id => document.querySelector(`li[data-instance="${id}"] .badge`).textContent',
                instance_id(service, k),
            )
            if current == status.value:
                status = (
                    InstanceStatus.ACTIVE
                    if status is InstanceStatus.UNHEALTHY
                    else InstanceStatus.UNHEALTHY
                )
            await page.evaluate(WATCH_SCRIPT, [instance_id(service, k), status.value])
            written = time.time()
            await bucket.put(
                instance_key(service, instance_id(service, k)), record(service, k, status)
            )
            seen_ms = await page.evaluate("window.seen")
            latencies.append(max(0.0, seen_ms / 1000 - written))
        tg.cancel_scope.cancel()
    return latencies


def main() -> None:
    problem = why_no_browser()
    if problem is not None:
        print(f"bench.web: skipped: {problem}")
        return
    configure_logging(LogFormat.HUMAN, "error")
    with NatsServer() as server:
        figures = run(lambda: measure(server))
    render, change, churn = figures["render"], figures["change"], figures["change_churn"]
    ms = f"< {CHANGE_GOAL * 1000:g} ms"
    rows: list[list[object]] = [
        [f"render, median of {RENDERS} (s)", statistics.median(render), f"< {RENDER_GOAL:g} s",
         ratio(statistics.median(render), RENDER_GOAL)],
        [f"change to page, p50 of {CHANGES} (ms)", statistics.median(change) * 1000, ms,
         ratio(statistics.median(change), CHANGE_GOAL)],
        ["change to page, max (ms)", max(change) * 1000, ms, ratio(max(change), CHANGE_GOAL)],
        [f"change under {CHURN_PER_SECOND} writes/s, p50 (ms)", statistics.median(churn) * 1000,
         ms, ratio(statistics.median(churn), CHANGE_GOAL)],
        [f"change under {CHURN_PER_SECOND} writes/s, max (ms)", max(churn) * 1000, ms,
         ratio(max(churn), CHANGE_GOAL)],
        ["idle CPU, no page (% of a core)", figures["idle"] * 100, f"< {IDLE_GOAL:.0%}",
         ratio(figures["idle"], IDLE_GOAL)],
        ["idle CPU, page open (% of a core)", figures["idle_page"] * 100,
         f"< {IDLE_PAGE_GOAL:.0%}", ratio(figures["idle_page"], IDLE_PAGE_GOAL)],
    ]  # fmt: skip
    table(
        f"Web monitor, {INSTANCES:,} instances of {SERVICES} services (headless Chromium)",
        ["figure", "measured", "goal", "of goal"],
        rows,
    )


if __name__ == "__main__":
    main()
