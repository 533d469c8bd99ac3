"""ServiceActor over real NATS: RPC round trips, errors, deadlines, events, concurrency."""

from __future__ import annotations

from typing import Any

import anyio
import nats.micro.service as micro
import pytest
from nats.aio.client import Client
from pydantic import BaseModel
from structlog.testing import capture_logs

from aegis_actors import (
    ActorSystem,
    InstanceSettings,
    ServiceActor,
    ServiceError,
    Subjects,
    current_request,
    event,
    rpc,
    start_instance,
)
from aegis_actors._wire import (
    DEADLINE_HEADER,
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    TRACE_ID_HEADER,
    deadline_header,
)
from tests.probes import Journal

pytestmark = pytest.mark.nats


class Pair(BaseModel):
    a: int
    b: int


class Calc(ServiceActor):
    """Adds numbers, and misbehaves on request."""

    service_name = "calc"
    version = "1.2.3"
    max_request_bytes = 1024

    def __init__(self) -> None:
        super().__init__()
        self.active = 0

    @property
    def journal(self) -> Journal:
        journal: Journal = self.settings["journal"]
        return journal

    @rpc(idempotent=True)
    async def add(self, params: Pair) -> int:
        """Add two integers."""
        return params.a + params.b

    @rpc
    async def conflict(self) -> None:
        raise ServiceError(409, "ALREADY_EXISTS", "it is\nalready there", {"name": "x"})

    @rpc
    async def crash(self) -> None:
        raise RuntimeError("boom")

    @rpc
    async def wait(self, params: dict[str, Any]) -> str:
        await self._track(self.settings["gates"][params["gate"]])
        return "done"

    @rpc(max_concurrency=3)
    async def wait_concurrently(self, params: dict[str, Any]) -> str:
        await self._track(self.settings["gates"][params["gate"]])
        return "done"

    async def _track(self, gate: anyio.Event) -> None:
        self.active += 1
        self.journal.record("active", self.active)
        try:
            await gate.wait()
        finally:
            self.active -= 1

    @rpc
    async def trace(self) -> str:
        request = current_request()
        assert request is not None
        await self.publish_event("events.calc.traced", {"a": 1, "b": 2})
        return request.trace_id

    @event("events.calc.*")
    async def on_calc(self, payload: Pair) -> None:
        request = current_request()
        assert request is not None
        self.journal.record("event", self.instance_id, payload.a + payload.b, request.trace_id)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def gates() -> dict[str, anyio.Event]:
    return {name: anyio.Event() for name in ("one", "two")}


@pytest.fixture
def settings(
    instance_settings: InstanceSettings, journal: Journal, gates: dict[str, anyio.Event]
) -> InstanceSettings:
    return instance_settings.model_copy(
        update={"settings": {"journal": journal, "gates": gates}, "registration": False}
    )


async def request(
    client: Client,
    subject: str,
    body: bytes = b"{}",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[dict[str, Any], dict[str, str]]:
    import json

    reply = await client.request(subject, body, timeout=timeout, headers=headers)
    return json.loads(reply.data), dict(reply.headers or {})


class TestRoundTrip:
    """A method answers on the service subject (any instance) and the instance subject."""

    async def test_rpc_and_instance_subjects(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        subjects = Subjects(namespace)
        async with ActorSystem() as system:
            running = await start_instance(system, Calc, settings)
            for subject in (
                subjects.rpc("calc", "add"),
                subjects.instance(running.instance_id, "add"),
            ):
                reply, headers = await request(nats_client, subject, b'{"a": 2, "b": 3}')
                assert reply == {"ok": True, "status": 200, "data": 5}
                assert ERROR_HEADER not in headers

    async def test_instance_ids_name_the_service(self, settings: InstanceSettings) -> None:
        async with ActorSystem() as system:
            running = await start_instance(system, Calc, settings)
        assert running.instance_id.startswith("calc-")
        assert len(running.instance_id) == len("calc-") + 8


class TestBadRequests:
    """Bad input gets an error reply (docs/reference/errors.md) and never crashes the actor."""

    @pytest.mark.parametrize(
        ("body", "status", "code", "field"),
        [
            (b"not json", 400, "BAD_REQUEST", None),
            (b"", 400, "BAD_REQUEST", None),
            (b"[1, 2]", 400, "BAD_REQUEST", None),
            (b'"a string"', 400, "BAD_REQUEST", None),
            (b'{"a": "x", "b": 1}', 422, "VALIDATION_ERROR", "a"),
            (b'{"a": 1}', 422, "VALIDATION_ERROR", "b"),
            (b'{"a": 1, "b": ' + b"9" * 2000 + b"}", 400, "BAD_REQUEST", None),
        ],
    )
    async def test_bad_body(
        self,
        settings: InstanceSettings,
        nats_client: Client,
        namespace: str,
        body: bytes,
        status: int,
        code: str,
        field: str | None,
    ) -> None:
        subject = Subjects(namespace).rpc("calc", "add")
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            reply, headers = await request(nats_client, subject, body)
            assert reply["ok"] is False
            assert reply["status"] == status
            assert reply["error"]["code"] == code
            assert headers[ERROR_CODE_HEADER] == str(status)
            assert headers[ERROR_HEADER] == reply["error"]["message"]
            if field is not None:
                assert reply["error"]["details"]["field"] == field
                assert "value" in reply["error"]["details"]
            # Still serving.
            reply, _ = await request(nats_client, subject, b'{"a": 1, "b": 1}')
            assert reply["data"] == 2

    async def test_unknown_method_is_404_listing_the_methods(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            reply, _ = await request(nats_client, Subjects(namespace).rpc("calc", "nope"))
        assert reply["status"] == 404
        assert reply["error"]["code"] == "NOT_FOUND"
        assert "add" in reply["error"]["details"]["methods"]


class TestHandlerErrors:
    """ServiceError becomes its reply; any other exception a 500 with a trace id."""

    async def test_service_error_reply_with_headers(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            reply, headers = await request(nats_client, Subjects(namespace).rpc("calc", "conflict"))
        assert reply == {
            "ok": False,
            "status": 409,
            "error": {
                "code": "ALREADY_EXISTS",
                "message": "it is\nalready there",
                "details": {"name": "x"},
            },
        }
        assert headers[ERROR_CODE_HEADER] == "409"
        assert headers[ERROR_HEADER] == "it is already there"  # one line in a header

    async def test_unexpected_exception_is_a_500_logged_with_the_trace_id(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            with capture_logs() as logs:
                reply, _ = await request(
                    nats_client,
                    Subjects(namespace).rpc("calc", "crash"),
                    headers={TRACE_ID_HEADER: "trace-123"},
                )
        assert reply["status"] == 500
        assert reply["error"]["code"] == "INTERNAL"
        assert "boom" not in str(reply), "no internals in the reply"
        assert reply["error"]["details"] == {"traceId": "trace-123"}
        (logged,) = [e for e in logs if e["event"] == "handler failed"]
        assert logged["trace_id"] == "trace-123"
        assert logged["log_level"] == "error"


class TestDeadlines:
    """Aegis-Deadline: a call past it is refused or cut short with 504."""

    async def test_a_deadline_already_past_is_refused(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            reply, _ = await request(
                nats_client,
                Subjects(namespace).rpc("calc", "add"),
                b'{"a": 1, "b": 1}',
                headers={DEADLINE_HEADER: deadline_header(-1.0)},
            )
        assert (reply["status"], reply["error"]["code"]) == (504, "DEADLINE_EXCEEDED")

    async def test_a_handler_running_past_the_deadline_is_cut_short(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        subject = Subjects(namespace).rpc("calc", "wait")
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            reply, _ = await request(
                nats_client,
                subject,
                b'{"gate": "one"}',
                headers={DEADLINE_HEADER: deadline_header(0.2)},
            )
            assert (reply["status"], reply["error"]["code"]) == (504, "DEADLINE_EXCEEDED")
            # The actor is free again at once.
            reply, _ = await request(
                nats_client, Subjects(namespace).rpc("calc", "add"), b'{"a": 1, "b": 1}'
            )
            assert reply["data"] == 2


class TestTraceAndEvents:
    """The trace id flows from the request into events; events reach the service once."""

    async def test_trace_id_reaches_the_handler_and_the_events_it_publishes(
        self, settings: InstanceSettings, nats_client: Client, namespace: str, journal: Journal
    ) -> None:
        async with ActorSystem() as system:
            running = await start_instance(system, Calc, settings)
            reply, _ = await request(
                nats_client,
                Subjects(namespace).rpc("calc", "trace"),
                headers={TRACE_ID_HEADER: "abc"},
            )
            assert reply["data"] == "abc"
            await journal.wait_for(lambda events: any(e[0] == "event" for e in events))
        assert journal.of("event") == [("event", running.instance_id, 3, "abc")]

    async def test_without_a_trace_id_a_w3c_one_is_made_and_sent_back(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            reply, headers = await request(nats_client, Subjects(namespace).rpc("calc", "trace"))
        trace_id = reply["data"]
        assert len(trace_id) == 32
        assert int(trace_id, 16)
        assert headers == {TRACE_ID_HEADER: trace_id}

    async def test_each_event_reaches_one_instance_of_the_service(
        self, settings: InstanceSettings, nats_client: Client, namespace: str, journal: Journal
    ) -> None:
        subjects = Subjects(namespace)
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            await start_instance(system, Calc, settings)
            for i in range(20):
                await nats_client.publish(
                    subjects.event("events.calc.sum"), b'{"a": %d, "b": 0}' % i
                )
            await journal.wait_for(lambda events: len([e for e in events if e[0] == "event"]) >= 20)
            # A round trip through the queue group after the last event: nothing else is coming.
            await request(nats_client, subjects.rpc("calc", "add"), b'{"a": 0, "b": 0}')
        sums = sorted(e[2] for e in journal.of("event"))
        assert sums == list(range(20))

    async def test_an_invalid_event_is_dropped_and_logged(
        self, settings: InstanceSettings, nats_client: Client, namespace: str, journal: Journal
    ) -> None:
        subjects = Subjects(namespace)
        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            with capture_logs() as logs:
                await nats_client.publish(subjects.event("events.calc.bad"), b'{"a": "x"}')
                await nats_client.publish(subjects.event("events.calc.ok"), b'{"a": 1, "b": 1}')
                await journal.wait_for(lambda events: any(e[0] == "event" for e in events))
        assert [e[2] for e in journal.of("event")] == [2]
        (dropped,) = [e for e in logs if e["event"] == "invalid event dropped"]
        assert dropped["subject"] == "events.calc.bad"


class TestConcurrency:
    """One call at a time by default; max_concurrency=N runs up to N at once."""

    async def test_calls_run_one_at_a_time_by_default(
        self,
        settings: InstanceSettings,
        nats_client: Client,
        namespace: str,
        journal: Journal,
        gates: dict[str, anyio.Event],
    ) -> None:
        subject = Subjects(namespace).rpc("calc", "wait")
        replies: list[str] = []

        async def call() -> None:
            reply, _ = await request(nats_client, subject, b'{"gate": "one"}')
            replies.append(reply["data"])

        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(call)
                await journal.wait_count(("active", 1), 1)
                gates["one"].set()
        assert replies == ["done"] * 5
        assert {e[1] for e in journal.of("active")} == {1}

    async def test_max_concurrency_runs_up_to_n_calls_at_once(
        self,
        settings: InstanceSettings,
        nats_client: Client,
        namespace: str,
        journal: Journal,
        gates: dict[str, anyio.Event],
    ) -> None:
        subject = Subjects(namespace).rpc("calc", "wait_concurrently")
        replies: list[str] = []

        async def call() -> None:
            reply, _ = await request(nats_client, subject, b'{"gate": "one"}')
            replies.append(reply["data"])

        async with ActorSystem() as system:
            await start_instance(system, Calc, settings)
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(call)
                await journal.wait_count(("active", 3), 1)
                gates["one"].set()
        assert replies == ["done"] * 6
        assert max(e[1] for e in journal.of("active")) == 3


class TestGracefulStop:
    """Stopping drains: accepted calls are answered, then the instance is gone."""

    async def test_an_in_flight_call_is_answered_during_the_stop(
        self,
        settings: InstanceSettings,
        nats_client: Client,
        namespace: str,
        journal: Journal,
        gates: dict[str, anyio.Event],
    ) -> None:
        subject = Subjects(namespace).rpc("calc", "wait")
        replies: list[Any] = []

        async def call() -> None:
            reply, _ = await request(nats_client, subject, b'{"gate": "one"}')
            replies.append(reply)

        async with ActorSystem() as system:
            running = await start_instance(system, Calc, settings)
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await journal.wait_count(("active", 1), 1)
                tg.start_soon(system.stop, running.ref)
                await anyio.wait_all_tasks_blocked()
                gates["one"].set()
        assert replies == [{"ok": True, "status": 200, "data": "done"}]
        assert not running.ref.is_alive


class TestServiceProtocol:
    """$SRV.PING / INFO / STATS answer like nats.micro services, with every id form."""

    async def test_ping_info_and_stats_parse_with_nats_micro(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        import json

        async with ActorSystem() as system:
            running = await start_instance(system, Calc, settings)
            iid = running.instance_id
            await request(nats_client, Subjects(namespace).rpc("calc", "add"), b'{"a":1,"b":1}')
            await request(nats_client, Subjects(namespace).rpc("calc", "crash"))
            await request(nats_client, Subjects(namespace).rpc("calc", "add"), b"x")

            # `$SRV.PING` is answered by every service on the server: any answer is one.
            reply = await nats_client.request("$SRV.PING", b"", timeout=5)
            assert micro.ServicePing.from_dict(json.loads(reply.data)).id
            for subject in ("$SRV.PING.calc", f"$SRV.PING.calc.{iid}"):
                reply = await nats_client.request(subject, b"", timeout=5)
                ping = micro.ServicePing.from_dict(json.loads(reply.data))
                assert ping.type == "io.nats.micro.v1.ping_response"
                assert (ping.name, ping.id, ping.version) == ("calc", iid, "1.2.3")

            reply = await nats_client.request(f"$SRV.INFO.calc.{iid}", b"", timeout=5)
            info = micro.ServiceInfo.from_dict(json.loads(reply.data))
            assert info.type == "io.nats.micro.v1.info_response"
            endpoints = {e.name: e for e in info.endpoints}
            assert endpoints["add"].subject == Subjects(namespace).rpc("calc", "add")
            assert endpoints["add"].queue_group == "calc"
            assert endpoints["add"].metadata == {"description": "Add two integers."}
            assert set(endpoints) == {
                "add", "conflict", "crash", "wait", "wait_concurrently", "trace", "on_calc"
            }  # fmt: skip
            # An event handler is an endpoint too: its subject is its pattern.
            assert endpoints["on_calc"].subject == Subjects(namespace).event("events.calc.*")
            assert endpoints["on_calc"].metadata == {"kind": "event", "durable": "false"}

            reply = await nats_client.request(f"$SRV.STATS.calc.{iid}", b"", timeout=5)
            stats = micro.ServiceStats.from_dict(json.loads(reply.data))
            by_name = {e.name: e for e in stats.endpoints}
            assert (by_name["add"].num_requests, by_name["add"].num_errors) == (2, 1)
            assert by_name["add"].last_error.startswith("400 BAD_REQUEST")
            assert (by_name["crash"].num_requests, by_name["crash"].num_errors) == (1, 1)
            assert by_name["add"].processing_time > 0
            assert by_name["add"].average_processing_time == by_name["add"].processing_time // 2

    async def test_a_stopped_instance_no_longer_answers_ping(
        self, settings: InstanceSettings, nats_client: Client
    ) -> None:
        import nats.errors

        async with ActorSystem() as system:
            running = await start_instance(system, Calc, settings)
            await system.stop(running.ref)
            with pytest.raises(nats.errors.NoRespondersError):
                await nats_client.request(f"$SRV.PING.calc.{running.instance_id}", b"", timeout=2)
