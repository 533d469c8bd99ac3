"""`aegis web`, and `[web]` in a fleet file, as real processes."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import anyio
import pytest

from aegis_actors._config_file import load_config
from aegis_actors._errors import ConfigError
from aegis_actors._nats_server import NatsServer
from tests.test_run import aegis, read_line, rest
from tests.web_support import EventReader

pytestmark = pytest.mark.nats


async def get_snapshot(url: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "api/events") as response,
    ):
        event, snapshot = await EventReader(response).next()
    assert event == "snapshot"
    return snapshot  # type: ignore[no-any-return]


class TestAegisWeb:
    """`aegis web` serves the monitor with the CLI's usual connection options."""

    async def test_it_serves_until_interrupted(self, nats_server: NatsServer) -> None:
        async with aegis("web", "--url", nats_server.url, "--port", "0") as process:
            line = await read_line(process)
            assert line.startswith("aegis web: serving http://127.0.0.1:")
            assert f"for the fleet at {nats_server.url}" in line
            url = line.split()[3]
            snapshot = await get_snapshot(url)
            assert snapshot["status"] == {"connected": True, "synced": True}
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(20):
                assert await process.wait() == 0

    async def test_no_nats_is_exit_3_with_one_line(self) -> None:
        async with aegis(
            "web", "--url", "nats://127.0.0.1:1", "--timeout", "0.5", "--port", "0"
        ) as process:
            with anyio.fail_after(20):
                code = await process.wait()
            err = await rest(process.stderr)
        assert code == 3
        assert "aegis web: cannot reach NATS at nats://127.0.0.1:1" in err

    async def test_a_taken_port_is_exit_1_naming_it(self, nats_server: NatsServer) -> None:
        with NatsServer() as other:  # its client port is taken: a fine victim
            async with aegis("web", "--url", nats_server.url, "--port", str(other.port)) as p:
                with anyio.fail_after(20):
                    code = await p.wait()
                err = await rest(p.stderr)
        assert code == 1
        assert "address already in use" in err.lower()


class TestFleetFileWeb:
    """`[web]` in a fleet file makes `aegis run` serve the monitor too."""

    async def test_aegis_run_serves_the_monitor(self, tmp_path: Path) -> None:
        config = tmp_path / "fleet.toml"
        config.write_text(
            'name = "webfleet"\n[embedded]\nport = 0\n[web]\nport = 0\n'
            '[[services]]\nclass = "tests.fleet_services:Hello"\ninstances = 2\n'
        )
        async with aegis("run", str(config)) as process:
            line = await read_line(process)
            assert "web monitor at http://127.0.0.1:" in line
            url = line.split("web monitor at ")[1].split(";")[0]
            snapshot = await get_snapshot(url)
            services = {r["serviceName"] for r in snapshot["instances"]}  # type: ignore[attr-defined]
            assert services == {"hello"}
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                assert await process.wait() == 0

    def test_a_bad_web_section_names_the_key(self, tmp_path: Path) -> None:
        config = tmp_path / "fleet.toml"
        config.write_text(
            '[web]\nport = 70000\n[[services]]\nclass = "tests.fleet_services:Hello"\n'
        )
        with pytest.raises(ConfigError, match=r"web\.port"):
            load_config(config, environ={})
