"""`aegis_actors.testing` works in a user's project as it is: strict mode, yield fixtures, logs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.nats

USER_CONFTEST = """
pytest_plugins = ["aegis_actors.testing"]
"""

USER_TESTS = """
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel

from aegis_actors import ActorSystem, Client, ServiceActor, rpc
from aegis_actors.testing import serve


class Greeting(BaseModel):
    name: str


class Greeter(ServiceActor):
    service_name = "greeter"

    @rpc
    async def greet(self, params: Greeting) -> str:
        self.actor_log.info("greeting", who=params.name)
        return f"hello, {params.name}"


@pytest_asyncio.fixture
async def greeter(nats_url: str, namespace: str) -> AsyncIterator[Client]:
    async with serve(Greeter, nats_url, namespace=namespace) as client:
        yield client


@pytest_asyncio.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem() as system:
        yield system


@pytest.mark.asyncio
async def test_a_service_answers(greeter: Client, captured_logs: list[dict[str, Any]]) -> None:
    assert await greeter.call("greeter", "greet", {"name": "Ada"}) == "hello, Ada"
    assert {"event": "greeting", "who": "Ada"}.items() <= next(
        line for line in captured_logs if line["event"] == "greeting"
    ).items()


@pytest.mark.asyncio
async def test_the_raw_fixtures(nats_client: Any, namespace: str, system: ActorSystem) -> None:
    assert nats_client.is_connected
    assert namespace.startswith("t")
"""


class TestStrictMode:
    """The fixtures and `serve()` work in pytest-asyncio's default (strict) mode."""

    def test_a_users_first_tests_pass_in_strict_mode(self, pytester: pytest.Pytester) -> None:
        pytester.makeconftest(USER_CONFTEST)
        pytester.makepyfile(test_greeter=USER_TESTS)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-o", "asyncio_mode=strict", "-q"
        )
        result.assert_outcomes(passed=2)
        # Yield fixtures around ActorSystem and Client tear down in another task.
        assert "cancel scope" not in result.stdout.str()
