"""The shared-inbox requester: replies matched to requests, no responders, timeouts."""

from __future__ import annotations

import anyio
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from aegis_actors import NatsUnavailableError, NoRespondersError, RequestTimeoutError
from aegis_actors._requester import Requester

pytestmark = pytest.mark.nats


@pytest.fixture
async def echo(nats_client: Client, namespace: str) -> str:
    """A responder on `{namespace}.echo` that answers with the request's own body."""

    async def respond(msg: Msg) -> None:
        await nats_client.publish(msg.reply, msg.data, headers=msg.headers)

    await nats_client.subscribe(f"{namespace}.echo", cb=respond)
    await nats_client.flush()
    return f"{namespace}.echo"


@pytest.fixture
async def requester(nats_client: Client) -> Requester:
    requester = Requester(nats_client)
    await requester.start()
    return requester


class TestRequests:
    """Every request gets its own reply, however many are in flight."""

    async def test_a_reply_comes_back_with_its_headers(
        self, requester: Requester, echo: str
    ) -> None:
        msg = await requester.request(echo, b"hello", timeout=2, headers={"X-Test": "1"})
        assert msg.data == b"hello"
        assert msg.headers == {"X-Test": "1"}

    async def test_concurrent_requests_each_get_their_own_reply(
        self, requester: Requester, echo: str
    ) -> None:
        replies: dict[int, bytes] = {}

        async def ask(n: int) -> None:
            replies[n] = (await requester.request(echo, str(n).encode(), timeout=5)).data

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(ask, n)
        assert replies == {n: str(n).encode() for n in range(200)}
        assert requester.in_flight == 0

    async def test_start_is_idempotent(self, requester: Requester, echo: str) -> None:
        await requester.start()
        assert (await requester.request(echo, b"x", timeout=2)).data == b"x"


class TestFailures:
    """No responders fails at once; a silent responder fails at the timeout; nothing leaks."""

    async def test_a_subject_nobody_serves_fails_at_once_with_no_responders(
        self, requester: Requester, namespace: str
    ) -> None:
        with anyio.fail_after(1), pytest.raises(NoRespondersError) as info:
            # A 30 s timeout: only "no responders" can end this within the second.
            await requester.request(f"{namespace}.nobody", b"", timeout=30)
        assert info.value.subject == f"{namespace}.nobody"
        assert isinstance(info.value, ConnectionError)
        assert requester.in_flight == 0

    async def test_a_silent_responder_times_out(
        self, requester: Requester, nats_client: Client, namespace: str
    ) -> None:
        await nats_client.subscribe(f"{namespace}.silent")  # subscribed, never answers
        await nats_client.flush()
        with pytest.raises(RequestTimeoutError) as info:
            await requester.request(f"{namespace}.silent", b"", timeout=0.05)
        assert isinstance(info.value, TimeoutError)
        assert "0.05 s" in str(info.value)
        assert requester.in_flight == 0

    async def test_a_cancelled_request_leaves_nothing_behind(
        self, requester: Requester, nats_client: Client, namespace: str
    ) -> None:
        await nats_client.subscribe(f"{namespace}.silent")
        await nats_client.flush()
        with anyio.move_on_after(0.05):
            await requester.request(f"{namespace}.silent", b"", timeout=30)
        assert requester.in_flight == 0

    async def test_a_closed_requester_refuses_and_fails_waiting_requests(
        self, requester: Requester, nats_client: Client, namespace: str
    ) -> None:
        await nats_client.subscribe(f"{namespace}.silent")
        await nats_client.flush()
        failures: list[BaseException] = []

        async def wait() -> None:
            try:
                await requester.request(f"{namespace}.silent", b"", timeout=30)
            except NatsUnavailableError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await requester.close()
        assert len(failures) == 1
        with pytest.raises(NatsUnavailableError, match="not started"):
            await requester.request(f"{namespace}.silent", b"", timeout=1)

    async def test_a_payload_over_the_server_limit_is_a_clear_value_error(
        self, requester: Requester, echo: str, nats_client: Client
    ) -> None:
        with pytest.raises(ValueError, match="max_payload"):
            await requester.request(echo, b"x" * (nats_client.max_payload + 1), timeout=1)
        assert requester.in_flight == 0
