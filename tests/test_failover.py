"""Failover under load: instances die (SIGKILL) and come back, and no call fails."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from aegis_actors import Client, ServiceError
from tests.discovery_support import victims
from tests.probes import Journal

pytestmark = pytest.mark.nats

CALLERS = 3
IN_FLIGHT = 2  # per caller
PROGRESS = 20  # successful calls per caller that show the load goes on


class TestFailover:
    """Three callers keep calling a three-instance service while its instances are replaced."""

    async def test_no_call_fails_while_instances_are_killed_and_restarted_one_at_a_time(
        self, nats_url: str, namespace: str
    ) -> None:
        successes = [0] * CALLERS
        failures: list[ServiceError] = []
        newcomers: list[str] = []
        progress = Journal()

        async with AsyncExitStack() as stack:
            fleet = await stack.enter_async_context(victims(nats_url, namespace, 3))
            clients = [
                await stack.enter_async_context(Client(url=nats_url, namespace=namespace))
                for _ in range(CALLERS)
            ]
            for c in clients:
                await c.wait_for_instances("victim", 3)

            async def load(caller: int) -> None:
                n = 0
                while True:
                    n += 1
                    try:
                        # Idempotent: a call caught in flight by the SIGKILL times
                        # out and is retried on another instance, within 1 s.
                        await clients[caller].call(
                            "victim", "echo", {"n": n}, timeout=1.0, idempotent=True
                        )
                    except ServiceError as exc:
                        failures.append(exc)
                    else:
                        successes[caller] += 1
                        progress.record(caller)

            async def goes_on() -> None:
                mark = list(successes)
                await progress.wait_for(
                    lambda _: all(s >= m + PROGRESS for s, m in zip(successes, mark, strict=True)),
                    timeout=10,
                )

            async with anyio.create_task_group() as tg:
                for caller in range(CALLERS):
                    for _ in range(IN_FLIGHT):
                        tg.start_soon(load, caller)
                await goes_on()
                for doomed in list(fleet.processes):
                    await fleet.kill(doomed)
                    await goes_on()  # on the two left
                    newcomer = await fleet.start()
                    newcomers.append(newcomer)
                    for c in clients:
                        assert c.cache is not None
                        await c.cache.wait_for(
                            lambda s, new=newcomer: new in s["victim"].ids, timeout=10
                        )
                    await goes_on()
                tg.cancel_scope.cancel()
            stats = [c.statistics() for c in clients]

        assert failures == []
        assert all(s.failed == 0 for s in stats)
        assert all(s.retries >= 1 for s in stats)  # every caller met a dead instance
        served = {i for s in stats for i, tally in s.instances.items() if tally.calls}
        assert set(newcomers) <= served  # the replacements took their share
