"""Testing services against a real nats-server: pytest fixtures and `serve()`.

Enable the fixtures in your `conftest.py` (they work in pytest-asyncio's
default strict mode; `pip install 'aegis-actors[testing]'`):

    pytest_plugins = ["aegis_actors.testing"]

Fixtures:
    nats_server     one server for the whole session (free port, temporary JetStream);
                    a test that kills, pauses or restarts it should use `own_nats_server`.
    own_nats_server a server for one test only, free to kill, pause and restart.
    nats_url        the session server's URL.
    nats_client     a connected nats-py client for one test, closed afterwards.
    namespace       a unique lowercase prefix for one test's subjects, buckets and names.
    nats_cluster    a 3-node JetStream cluster for the session (started on first use).
    captured_logs   the log lines of one test, as dicts (structlog's `capture_logs`).

`serve()` starts a service and yields a `Client` that calls it. Wrap it in a
fixture of your own (set up and torn down in two tasks by pytest-asyncio,
which `ActorSystem` and `Client` allow):

    @pytest_asyncio.fixture
    async def greeter(nats_url: str, namespace: str) -> AsyncIterator[Client]:
        async with serve(Greeter, nats_url, namespace=namespace) as client:
            yield client

    @pytest.mark.asyncio
    async def test_greets(greeter: Client, captured_logs: list[dict[str, Any]]) -> None:
        assert await greeter.call("greeter", "greet", {"name": "Ada"}) == "hello, Ada"
        assert any(line["event"] == "instance started" for line in captured_logs)

The library never configures logging: services log through structlog, and
`captured_logs` (or `structlog.testing.capture_logs()` around a block) is how
a test sees those lines; pytest's `caplog` does not (docs/guides/testing.md).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from aegis_actors._client import Client
from aegis_actors._connection import ConnectionSettings, connect
from aegis_actors._instance_tree import start_instance
from aegis_actors._nats_server import NatsCluster, NatsServer
from aegis_actors._registry.heartbeat import HeartbeatSettings
from aegis_actors._service import ServiceActor
from aegis_actors._settings import InstanceSettings
from aegis_actors._system import ActorSystem
from aegis_actors._transport import NatsClient

__all__ = [
    "captured_logs",
    "namespace",
    "nats_client",
    "nats_cluster",
    "nats_server",
    "nats_url",
    "own_nats_server",
    "serve",
]


@asynccontextmanager
async def serve(
    service: type[ServiceActor],
    nats_url: str,
    *,
    namespace: str = "",
    instances: int = 1,
    settings: InstanceSettings | None = None,
) -> AsyncIterator[Client]:
    """Run `instances` of `service` and yield a `Client` that has found them all.

    The instances register with short heartbeats (key TTL 2 s) unless
    `settings` say otherwise; `settings` also carry the service's own
    `settings` table. Everything stops when the block is left (a yield
    fixture may leave it in another task than the one that entered it).
    """
    base = settings or InstanceSettings(heartbeat=HeartbeatSettings(ttl=2, interval=0.5))
    base = base.model_copy(
        update={"nats": ConnectionSettings(url=nats_url), "namespace": namespace}
    )
    async with ActorSystem(f"test-{service.service_name}") as system:
        for _ in range(instances):
            await start_instance(system, service, base)
        async with Client(url=nats_url, namespace=namespace) as client:
            if base.registration:
                await client.wait_for_instances(service.service_name, instances)
            yield client


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
def own_nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest_asyncio.fixture
async def nats_client(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(ConnectionSettings(url=nats_url, initial_connect_timeout=5.0))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def namespace() -> str:
    """A fresh `t` + 8 hex prefix: valid in bucket names, subjects and service names."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def nats_cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as cluster:
        yield cluster


@pytest.fixture
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log line of the test, as a dict (`event`, `log_level` and the bound keys).

    Context variables are merged in, as `configure_logging` does: a line
    written while a request or event is handled has its `trace_id` and
    `method`, and every line the `actor` that wrote it.
    """
    with capture_logs(processors=[merge_contextvars]) as lines:
        yield lines
