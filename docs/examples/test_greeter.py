import pytest
from greeter import Greeter

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    ServiceError,
    start_instance,
)


@pytest.mark.asyncio
async def test_hello_greets_and_counts(nats_url: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=nats_url))
    async with ActorSystem() as system:
        await start_instance(system, Greeter, settings)
        async with Client(url=nats_url) as client:
            assert await client.call("greeter", "hello", {"name": "Ada"}) == "Hello, Ada!"
            assert (await client.call("greeter", "stats"))["greetings"] == 1
            with pytest.raises(ServiceError) as refused:
                await client.call("greeter", "hello", {"name": " "})
            assert refused.value.status == 422
