"""`aegis call`: one call through discovery, its answer on stdout, errors as exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    NatsUnavailableError,
    ServiceActor,
    rpc,
    start_instance,
)
from aegis_actors._nats_server import free_port
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


class TestUnreachableNats:
    """With nobody at the URL, every command says so in one line and exits 3."""

    def test_aegis_call_prints_one_line_and_exits_3(self) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        result = subprocess.run(
            [sys.executable, "-m", "aegis_actors", "call", "adder", "add", "{}", "--url", url],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "AEGIS_NATS_URL": ""},
        )
        assert result.returncode == 3, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"cannot reach NATS at {url}" in result.stderr

    @pytest.mark.parametrize(
        "argv",
        [
            ("call", "adder", "add"),
            ("services", "list"),
            ("instances", "list"),
            ("apps", "list"),
            ("configs", "list"),
            ("top", "--once"),
        ],
    )
    async def test_every_client_command_exits_3(
        self, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
    ) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        code, _, err = await Cli(capsys, url, "")(*argv, "--timeout", "0.5")
        assert code == 3, err
        assert f"cannot reach NATS at {url}" in err

    async def test_client_raises_nats_unavailable_not_a_group(self) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        settings = ConnectionSettings(url=url, initial_connect_timeout=0.5)
        with pytest.raises(NatsUnavailableError, match="cannot reach NATS"):
            async with Client(nats=settings):
                pass
