"""pytest fixtures to test services against a real nats-server, as aegis tests itself.

Enable them in your `conftest.py`:

    pytest_plugins = ["aegis_actors.testing"]

Fixtures:
    nats_server   one server for the whole session (free port, temporary JetStream);
                  a test that kills, pauses or restarts it should use `own_nats_server`.
    own_nats_server  a server for one test only, free to kill, pause and restart.
    nats_url      the session server's URL.
    nats_client   a connected nats-py client for one test, closed afterwards.
    namespace     a unique lowercase prefix for one test's buckets and names.
    nats_cluster  a 3-node JetStream cluster for the session (started on first use).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from aegis_actors.connection import ConnectionSettings, connect
from aegis_actors.server import NatsCluster, NatsServer
from aegis_actors.transport import NatsClient


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


@pytest.fixture
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
