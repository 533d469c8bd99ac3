"""`aegis call`: one call through discovery, its answer on stdout, errors as exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aegis_actors import ActorSystem, InstanceSettings, ServiceActor, rpc, start_instance
from tests.cli_support import Cli

pytestmark = pytest.mark.nats


class Adder(ServiceActor):
    service_name = "adder"

    @rpc
    async def add(self, params: dict[str, int]) -> int:
        return params["a"] + params["b"]


class TestCall:
    async def test_answer_error_and_bad_json(
        self, capsys: pytest.CaptureFixture[str], instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        cli = Cli(capsys, nats_url, instance_settings.namespace)
        async with ActorSystem() as system:
            await start_instance(system, Adder, instance_settings)
            code, out, _ = await cli("call", "adder", "add", '{"a": 2, "b": 3}')
            assert (code, json.loads(out)) == (0, 5)
            reply: Any = await cli.json("call", "adder", "add", '{"a": 1, "b": 1}')
            # --json prints the envelope the service sent, status included.
            assert reply == {"ok": True, "status": 200, "data": 2}
            code, _, err = await cli("call", "adder", "nope", "{}")
            assert code == 1
            assert "404 NOT_FOUND" in err
            code, _, err = await cli("call", "adder", "add", "{not json")
            assert code == 2
            assert "not JSON" in err
            code, _, err = await cli("call", "adder", "add", '{"a": NaN, "b": 1}')
            assert code == 2
            assert "not JSON" in err
            code, _, err = await cli("call", "Bad Name", "add", "{}")
            assert code == 2
            assert "Bad Name" in err
            code, _, err = await cli("call", "nobody-home", "add", "{}", "--timeout", "1")
            assert code == 1
            assert "503 SERVICE_UNAVAILABLE" in err
