"""Bad input at the edges of JSON and of NATS: every request gets a JSON reply, never silence.

Long field names, replies over the server's max_payload, NaN and infinities
(which Python's and pydantic's parsers read but JSON does not have), and
versions that are not MAJOR.MINOR.PATCH.
"""

from __future__ import annotations

import json
from typing import Any

import nats.micro.service as micro
import pytest
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from aegis_actors import (
    ActorSystem,
    Client,
    InstanceSettings,
    ServiceActor,
    ServiceError,
    Subjects,
    WireModel,
    rpc,
    start_instance,
)
from aegis_actors import ServiceSettings as ServiceOptions
from aegis_actors._wire import ERROR_HEADER, MAX_ERROR_HEADER, MAX_PROBLEMS, error_reply

pytestmark = pytest.mark.nats


class Quote(WireModel):
    symbol: str
    price: float


class Size(WireModel):
    size: int


class Limits(ServiceActor):
    service_name = "limits"
    version = "2.0.1"

    @rpc
    async def quote(self, params: Quote) -> Quote:
        return params

    @rpc
    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return params

    @rpc
    async def big(self, params: Size) -> str:
        return "x" * params.size

    @rpc
    async def emit(self, params: dict[str, Any]) -> str:
        try:
            await self.publish_event("events.limits.emitted", {"value": float(params["value"])})
        except ValueError as exc:
            return str(exc)
        return "sent"


def strict_json(data: bytes) -> Any:
    """Parse as JSON proper: NaN and Infinity are refused, as most non-Python clients do."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(data, parse_constant=refuse)


async def ask(
    client: NatsClient, subject: str, body: bytes
) -> tuple[dict[str, Any], dict[str, str], int]:
    reply = await client.request(subject, body, timeout=5)
    return strict_json(reply.data), dict(reply.headers or {}), len(reply.data)


@pytest.fixture
def settings(instance_settings: InstanceSettings) -> InstanceSettings:
    return instance_settings.model_copy(update={"registration": False})


class TestLargeInput:
    async def test_a_huge_unknown_field_name_gets_a_short_422(
        self, settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        name = "k" * 200_000
        body = json.dumps({"symbol": "ACME", "price": 1.5, name: 1}).encode()
        subject = Subjects(namespace).rpc("limits", "quote")
        async with ActorSystem() as system:
            await start_instance(system, Limits, settings)
            reply, headers, size = await ask(nats_client, subject, body)
            assert (reply["status"], reply["error"]["code"]) == (422, "VALIDATION_ERROR")
            assert reply["error"]["details"]["field"].startswith("kkkk")
            assert "200000 long" in reply["error"]["details"]["field"]
            assert size < 5_000
            assert len(headers[ERROR_HEADER]) < MAX_ERROR_HEADER + 50

    async def test_thousands_of_bad_fields_list_the_first_ones_and_count_the_rest(
        self, settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        body = json.dumps({"symbol": "ACME", "price": 1.5, **{f"x{i}": i for i in range(1000)}})
        subject = Subjects(namespace).rpc("limits", "quote")
        async with ActorSystem() as system:
            await start_instance(system, Limits, settings)
            reply, _, size = await ask(nats_client, subject, body.encode())
            details = reply["error"]["details"]
            assert len(details["errors"]) == MAX_PROBLEMS
            assert details["moreErrors"] == 1000 - MAX_PROBLEMS
            assert size < 5_000

    async def test_a_reply_over_max_payload_is_a_500_counted_as_an_error(
        self, settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        subjects = Subjects(namespace)
        too_big = nats_client.max_payload + 1
        async with ActorSystem() as system:
            running = await start_instance(system, Limits, settings)
            reply, headers, _ = await ask(
                nats_client, subjects.rpc("limits", "big"), b'{"size": %d}' % too_big
            )
            assert (reply["status"], reply["error"]["code"]) == (500, "INTERNAL")
            assert "max_payload" in reply["error"]["message"]
            assert reply["error"]["details"]["limit"] == nats_client.max_payload
            assert headers[ERROR_HEADER] == reply["error"]["message"]
            # Still serving, and STATS counts the failure.
            reply, _, _ = await ask(nats_client, subjects.rpc("limits", "big"), b'{"size": 3}')
            assert reply["data"] == "xxx"
            stats = await nats_client.request(
                f"$SRV.STATS.limits.{running.instance_id}", b"", timeout=5
            )
            parsed = micro.ServiceStats.from_dict(json.loads(stats.data))
            big = next(e for e in parsed.endpoints if e.name == "big")
            assert (big.num_requests, big.num_errors) == (2, 1)
            assert "max_payload" in big.last_error


class TestNonJsonNumbers:
    @pytest.mark.parametrize(
        "body",
        [
            b'{"symbol": "ACME", "price": NaN}',
            b'{"symbol": "ACME", "price": Infinity}',
            b'{"symbol": "ACME", "price": -Infinity}',
        ],
    )
    async def test_nan_and_infinity_are_not_json(
        self, settings: InstanceSettings, nats_client: NatsClient, namespace: str, body: bytes
    ) -> None:
        subject = Subjects(namespace).rpc("limits", "quote")
        async with ActorSystem() as system:
            await start_instance(system, Limits, settings)
            reply, _, _ = await ask(nats_client, subject, body)
            assert (reply["status"], reply["error"]["code"]) == (400, "BAD_REQUEST")
            assert "NaN and Infinity are not JSON" in reply["error"]["message"]

    async def test_a_number_beyond_a_double_is_a_422_on_wire_models(
        self, settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        subject = Subjects(namespace).rpc("limits", "quote")
        async with ActorSystem() as system:
            await start_instance(system, Limits, settings)
            reply, _, _ = await ask(nats_client, subject, b'{"symbol": "ACME", "price": 1e999}')
            assert (reply["status"], reply["error"]["details"]["field"]) == (422, "price")
            # The reply is JSON proper even though the bad value was infinite.
            assert reply["error"]["details"]["value"] == "Infinity"

    async def test_the_words_inside_strings_are_fine(
        self, settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        subject = Subjects(namespace).rpc("limits", "echo")
        body = b'{"note": "NaN and Infinity are words", "n": 1}'
        async with ActorSystem() as system:
            await start_instance(system, Limits, settings)
            reply, _, _ = await ask(nats_client, subject, body)
            assert reply["data"] == {"note": "NaN and Infinity are words", "n": 1}

    async def test_call_and_publish_event_refuse_to_send_them(
        self, settings: InstanceSettings, nats_url: str, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Limits, settings)
            async with Client(url=nats_url, namespace=namespace) as client:
                with pytest.raises(ValueError, match="not JSON"):
                    await client.call("limits", "echo", {"x": float("inf")}, discovery=False)
                answer = await client.call("limits", "emit", {"value": "nan"}, discovery=False)
                assert "not JSON" in answer
                assert await client.call("limits", "emit", {"value": 1}, discovery=False) == "sent"

    def test_error_replies_are_json_whatever_their_details_hold(self) -> None:
        error = ServiceError(400, "BAD_REQUEST", "x", {"inf": float("inf"), "obj": object()})
        body, _ = error_reply(error)
        details = strict_json(body)["error"]["details"]
        assert details["inf"] == "Infinity"
        assert details["obj"].startswith("<object object")


class TestVersions:
    @pytest.mark.parametrize("version", ["1.0", "1.0.0-rc1", "v1.0.0", "\u0661.2.3", "1.2.3\n"])
    def test_a_service_class_needs_major_minor_patch(self, version: str) -> None:
        with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
            type("Bad", (ServiceActor,), {"service_name": "bad-version", "version": version})

    def test_a_config_file_version_needs_ascii_digits(self) -> None:
        with pytest.raises(ValidationError, match=r"MAJOR\.MINOR\.PATCH"):
            ServiceOptions(version="\u0661.2.3")
        assert ServiceOptions(version="10.20.30").version == "10.20.30"
