from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import nats.errors
import pytest

from aegis_actors import ConnectionSettings, HeartbeatSettings, InstanceSettings

pytest_plugins = ["aegis_actors.testing", "pytester"]


@pytest.fixture
def instance_settings(nats_url: str, namespace: str) -> InstanceSettings:
    """Settings for instances in a test: own namespace, fast heartbeats."""
    return InstanceSettings(
        nats=ConnectionSettings(url=nats_url),
        namespace=namespace,
        heartbeat=HeartbeatSettings(ttl=2, interval=0.5),
    )


@pytest.fixture(autouse=True)
async def no_leaked_instances(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A test that leaves a service instance running on the shared server fails."""
    yield
    if "nats_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("nats_url")
    client = await nats.connect(url)
    try:
        reply = await client.request("$SRV.PING", b"", timeout=1)
    except nats.errors.NoRespondersError:
        return
    finally:
        await client.close()
    pytest.fail(f"a service instance outlived the test: {reply.data.decode()}")
