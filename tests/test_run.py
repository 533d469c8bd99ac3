"""`aegis run` as a real process: start, serve, stop on a signal, and fail clearly."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import nats
import nats.js.errors
import pytest
from anyio.abc import Process
from nats.aio.client import Client

from aegis_actors import NatsServer, Subjects
from aegis_actors._buckets import Buckets
from aegis_actors._nats_server import free_port

pytestmark = pytest.mark.nats

ROOT = Path(__file__).parent.parent


def fleet_file(tmp_path: Path, nats_section: str, namespace: str = "") -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
name = "testfleet"
namespace = "{namespace}"
{nats_section}

[[services]]
class = "tests.fleet_services:Hello"
instances = 2
[services.heartbeat]
ttl = 5
interval = 1
"""
    )
    return path


@asynccontextmanager
async def aegis(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Process]:
    command = [sys.executable, "-m", "aegis_actors", "--log-format", "json", *args]
    environ = {**os.environ, **(env or {})}
    async with await anyio.open_process(command, cwd=ROOT, env=environ) as process:
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def read_line(process: Process, timeout: float = 20.0) -> str:
    assert process.stdout is not None
    data = b""
    with anyio.fail_after(timeout):
        while not data.endswith(b"\n"):
            data += await process.stdout.receive(1)
    return data.decode()


async def rest(stream: anyio.abc.ByteReceiveStream | None) -> str:
    if stream is None:
        return ""
    data = b""
    try:
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        return data.decode(errors="replace")


class TestServing:
    """A fleet serves, registers, and on SIGTERM deregisters and exits 0."""

    async def test_start_serve_and_stop_on_sigterm(
        self, tmp_path: Path, nats_url: str, namespace: str, nats_client: Client
    ) -> None:
        path = fleet_file(tmp_path, f'[nats]\nurl = "{nats_url}"', namespace)
        async with aegis("run", str(path)) as process:
            line = await read_line(process)
            assert line.startswith("aegis: 2 instances running (hello x2)")
            kv = await nats_client.jetstream().key_value(Buckets(namespace).registry)
            keys = await kv.keys()
            assert len(keys) == 2
            reply = await nats_client.request(
                Subjects(namespace).rpc("hello", "hi"), b"", timeout=5
            )
            assert json.loads(reply.data)["data"].startswith("hi from hello-")
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                code = await process.wait()
            logs = await rest(process.stderr)
        assert code == 0, logs
        with pytest.raises(nats.js.errors.NoKeysError):
            await kv.keys()
        events = [json.loads(line)["event"] for line in logs.splitlines() if line.startswith("{")]
        assert events.count("instance started") == 2
        assert events.count("deregistered") == 2
        assert "stopping gracefully" in events

    async def test_without_a_url_it_starts_its_own_server(self, tmp_path: Path) -> None:
        port = free_port()
        path = fleet_file(tmp_path, f"[embedded]\nport = {port}")
        async with aegis("run", str(path)) as process:
            line = await read_line(process)
            assert f"nats://127.0.0.1:{port}" in line
            client = await nats.connect(f"nats://127.0.0.1:{port}")
            try:
                reply = await client.request("aegis.rpc.hello.hi", b"", timeout=5)
                assert json.loads(reply.data)["ok"] is True
            finally:
                await client.close()
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(20):
                assert await process.wait() == 0

    async def test_a_second_signal_cuts_the_stop_short_exits_130_and_stops_the_server(
        self, tmp_path: Path
    ) -> None:
        port = free_port()
        path = tmp_path / "stubborn.toml"
        path.write_text(
            f'[embedded]\nport = {port}\n\n[[services]]\nclass = "tests.fleet_services:Stubborn"\n'
        )
        async with aegis("run", str(path)) as process:
            await wait_for_event(process, "instance started")
            process.send_signal(signal.SIGINT)
            await wait_for_event(process, "stopping slowly")
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(20):
                assert await process.wait() == 130
        # The embedded server went with it (it runs in a session of its own,
        # so nothing else would have stopped it).
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def wait_for_event(process: Process, event: str) -> None:
    """Read the JSON log lines (stderr) until one is `event`."""
    assert process.stderr is not None
    buffered = b""
    with anyio.fail_after(20):
        while True:
            while b"\n" not in buffered:
                buffered += await process.stderr.receive()
            line, buffered = buffered.split(b"\n", 1)
            if line.startswith(b"{") and json.loads(line)["event"] == event:
                return


class TestFailing:
    """A bad file or an unreachable server: a clear message and a non-zero exit."""

    async def test_a_bad_file_exits_2_naming_the_key(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text('[[services]]\nclass = "tests.fleet_services:Hello"\ninstances = 0\n')
        async with aegis("run", str(path)) as process:
            code = await process.wait()
            stderr = await rest(process.stderr)
        assert code == 2
        assert (
            f"{path}: services[0].instances: Input should be greater than or equal to 1" in stderr
        )

    async def test_check_validates_without_running(self, tmp_path: Path) -> None:
        path = fleet_file(tmp_path, "")
        async with aegis("run", "--check", str(path)) as process:
            code = await process.wait()
            stdout = await rest(process.stdout)
        assert code == 0
        assert "OK: 1 service, 2 instances, against an embedded nats-server" in stdout

    async def test_an_unreachable_server_exits_1_saying_so(self, tmp_path: Path) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        path = fleet_file(
            tmp_path, f'[nats]\nurl = "{url}"\ninitial_connect_timeout = 0.5\nconnect_timeout = 0.2'
        )
        async with aegis("run", str(path)) as process:
            with anyio.fail_after(20):
                code = await process.wait()
            stderr = await rest(process.stderr)
        assert code == 1
        assert f"cannot reach NATS at {url}" in stderr

    async def test_a_nats_key_that_is_no_table_exits_2_even_with_the_url_variable_set(
        self, tmp_path: Path
    ) -> None:
        path = fleet_file(tmp_path, 'nats = "nats://127.0.0.1:4222"')
        env = {"AEGIS_NATS_URL": "nats://127.0.0.1:4222"}
        async with aegis("run", "--check", str(path), env=env) as process:
            code = await process.wait()
            stderr = await rest(process.stderr)
        assert code == 2, stderr
        assert f"{path}: nats: Input should be a valid dictionary" in stderr
        assert "Traceback" not in stderr

    async def test_a_trailing_comma_in_the_url_variable_is_dropped(self, tmp_path: Path) -> None:
        path = fleet_file(tmp_path, "")
        env = {"AEGIS_NATS_URL": "nats://127.0.0.1:4222, "}
        async with aegis("run", "--check", str(path), env=env) as process:
            code = await process.wait()
            stdout = await rest(process.stdout)
        assert code == 0
        assert stdout.rstrip().endswith("against nats://127.0.0.1:4222")

    async def test_a_taken_embedded_port_says_which_config_key_picks_another(
        self, tmp_path: Path, nats_server: NatsServer
    ) -> None:
        path = fleet_file(tmp_path, f"[embedded]\nport = {nats_server.port}")
        async with aegis("run", str(path)) as process:
            with anyio.fail_after(20):
                code = await process.wait()
            stderr = await rest(process.stderr)
        assert code == 1
        assert f"port {nats_server.port} on 127.0.0.1 is already in use" in stderr
        assert f"set another [embedded] port in {path}" in stderr
        assert "--port" not in stderr
