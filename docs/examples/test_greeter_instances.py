from typing import Any

import pytest
from greeter import Greeter

from aegis_actors.testing import serve


@pytest.mark.asyncio
async def test_each_instance_keeps_its_own_count(
    nats_url: str, namespace: str, captured_logs: list[dict[str, Any]]
) -> None:
    async with serve(Greeter, nats_url, namespace=namespace, instances=2) as client:
        for _ in range(4):  # round robin: two calls each
            await client.call("greeter", "hello", {"name": "Ada"})
        counts = [(await client.call("greeter", "stats"))["greetings"] for _ in range(2)]
    assert counts == [2, 2]
    assert sum(line["event"] == "registered" for line in captured_logs) == 2
