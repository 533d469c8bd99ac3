import pytest
from greeter import Greeter
from structlog.testing import capture_logs

from aegis_actors import ActorSystem, Client, ConnectionSettings, InstanceSettings, start_instance


@pytest.mark.asyncio
async def test_greeter_registers_in_its_own_namespace(nats_url: str, namespace: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=nats_url), namespace=namespace)
    with capture_logs() as logs:
        async with ActorSystem() as system:
            running = await start_instance(system, Greeter, settings)
            async with Client(url=nats_url, namespace=namespace) as client:
                assert await client.wait_for_instances("greeter") == (running.instance_id,)
    assert any(line["event"] == "registered" for line in logs)
