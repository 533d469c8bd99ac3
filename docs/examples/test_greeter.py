from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from greeter import Greeter

from aegis_actors import Client, ServiceError
from aegis_actors.testing import serve


@pytest_asyncio.fixture
async def greeter(nats_url: str, namespace: str) -> AsyncIterator[Client]:
    async with serve(Greeter, nats_url, namespace=namespace) as client:
        yield client


@pytest.mark.asyncio
async def test_hello_greets_and_counts(greeter: Client) -> None:
    assert await greeter.call("greeter", "hello", {"name": "Ada"}) == "Hello, Ada!"
    assert (await greeter.call("greeter", "stats"))["greetings"] == 1
    with pytest.raises(ServiceError) as refused:
        await greeter.call("greeter", "hello", {"name": " "})
    assert refused.value.status == 422
