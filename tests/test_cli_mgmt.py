"""`aegis services ...` and `aegis instances ...` against a real management actor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from aegis_actors import ActorSystem, InstanceSettings, ManagementService, start_instance
from aegis_actors._nats_server import free_port
from tests.cli_support import Cli

pytestmark = pytest.mark.nats


OpenCli = Callable[[], AbstractAsyncContextManager[Cli]]


@pytest.fixture
def open_cli(
    capsys: pytest.CaptureFixture[str], instance_settings: InstanceSettings, nats_url: str
) -> OpenCli:
    """A management service to run commands against, for the `async with` block.

    Not a yielding fixture: the actor system's task group must be left by the
    task that entered it, and pytest-asyncio tears fixtures down in another.
    """

    @asynccontextmanager
    async def running() -> AsyncIterator[Cli]:
        async with ActorSystem() as system:
            await start_instance(system, ManagementService, instance_settings)
            yield Cli(capsys, nats_url, instance_settings.namespace)

    return running


class TestServices:
    """Human tables by default, the reply envelope with --json, exit 1 with the error's message."""

    async def test_create_get_update_delete_round_trip(self, open_cli: OpenCli) -> None:
        async with open_cli() as cli:
            code, out, _ = await cli(
                "services", "create", "orders", "--owner", "team-a", "--version", "1.0.0",
                "--description", "Takes [bold]orders[/bold]",
            )  # fmt: skip
            assert code == 0
            assert "created orders" in out
            assert "Takes [bold]orders[/bold]" in out, "user text is shown as is, not as markup"
            assert "team-a" in out

            got = await cli.json("services", "get", "orders")
            assert got["status"] == 200
            revision = got["revision"]

            code, out, _ = await cli(
                "services", "update", "orders", "--revision", str(revision), "--version", "1.1.0"
            )
            assert code == 0
            assert "1.1.0" in out

            code, out, err = await cli(
                "services", "update", "orders", "--revision", str(revision), "--version", "2.0.0"
            )
            assert code == 1
            assert "409 REVISION_CONFLICT" in err
            assert out == ""

            code, out, _ = await cli("services", "delete", "orders")
            assert (code, out.strip()) == (0, "deleted orders")
            code, _, err = await cli("services", "get", "orders")
            assert code == 1
            assert "404 NOT_FOUND: no service definition named 'orders'" in err

    async def test_list_shows_a_table_and_the_next_cursor(self, open_cli: OpenCli) -> None:
        async with open_cli() as cli:
            for name in ("billing", "orders", "auth"):
                await cli.json("services", "create", name, "--owner", "t", "--version", "1.0.0")
            code, out, _ = await cli("services", "list", "--limit", "2")
            assert code == 0
            assert "NAME" in out
            assert "VERSION" in out
            assert out.index("auth") < out.index("billing")
            assert "orders" not in out.replace("--cursor", "")
            assert "--cursor billing" in out
            everything = await cli.json("services", "list", "--limit", "1", "--all")
            assert [i["serviceName"] for i in everything["data"]["items"]] == [
                "auth", "billing", "orders"
            ]  # fmt: skip
            assert everything["data"]["nextCursor"] is None

    async def test_a_validation_error_shows_the_field_and_value(self, open_cli: OpenCli) -> None:
        async with open_cli() as cli:
            code, out, err = await cli(
                "services", "create", "Bad.Name", "--owner", "x", "--version", "1.0.0"
            )
            assert code == 1
            assert "422 VALIDATION_ERROR: serviceName" in err
            assert "field: serviceName, value: 'Bad.Name'" in err
            assert out == ""

    async def test_json_errors_go_to_stdout_as_the_error_envelope(self, open_cli: OpenCli) -> None:
        async with open_cli() as cli:
            code, out, _ = await cli("services", "delete", "nothing", "--json")
            assert code == 1
            reply = json.loads(out)
            assert (reply["ok"], reply["status"], reply["error"]["code"]) == (
                False,
                404,
                "NOT_FOUND",
            )

    async def test_a_namespace_without_a_management_service_is_a_clear_503(
        self, open_cli: OpenCli
    ) -> None:
        async with open_cli() as cli:
            cli.common[cli.common.index("--namespace") + 1] = "elsewhere"
            code, _, err = await cli("services", "list")
            assert code == 1
            assert "503 SERVICE_UNAVAILABLE: no aegis-mgmt instance serves" in err


class TestInstances:
    """instances list / get show what the registry holds."""

    async def test_list_and_get_show_the_management_instance_itself(
        self, open_cli: OpenCli
    ) -> None:
        async with open_cli() as cli:
            listed = await cli.json("instances", "list")
            (instance,) = listed["data"]["items"]
            assert instance["serviceName"] == "aegis-mgmt"
            code, out, _ = await cli("instances", "list", "--service", "aegis-mgmt")
            assert code == 0
            assert instance["instanceId"] in out
            assert "ACTIVE" in out
            code, out, _ = await cli("instances", "get", instance["instanceId"])
            assert code == 0
            assert "lastHeartbeat" in out
            assert "metadata.pid" in out
            code, _, err = await cli("instances", "get", "aegis-mgmt-00000000")
            assert code == 1
            assert "404 NOT_FOUND" in err


class TestProcess:
    """The installed entry point: exit codes a script can rely on."""

    def aegis(self, *argv: str, url: str, namespace: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AEGIS_NATS_URL": url, "AEGIS_NAMESPACE": namespace}
        return subprocess.run(
            [sys.executable, "-m", "aegis_actors", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )

    async def test_url_and_namespace_come_from_the_environment_and_errors_exit_1(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        namespace = instance_settings.namespace
        # A cluster's URLs, comma-separated as for `aegis run`; the first one is dead.
        urls = f"nats://127.0.0.1:{free_port()},{nats_url}"
        async with ActorSystem() as system:
            await start_instance(system, ManagementService, instance_settings)
            found = await anyio.to_thread.run_sync(
                lambda: self.aegis("services", "list", "--json", url=urls, namespace=namespace)
            )
            missing = await anyio.to_thread.run_sync(
                lambda: self.aegis("services", "get", "nope", url=nats_url, namespace=namespace)
            )
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["data"] == {"items": [], "nextCursor": None}
        assert "nats connected" not in found.stderr, "client commands log warnings only"
        assert missing.returncode == 1
        assert "404 NOT_FOUND" in missing.stderr

    async def test_a_trailing_comma_in_the_url_variable_is_dropped(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        namespace = instance_settings.namespace
        async with ActorSystem() as system:
            await start_instance(system, ManagementService, instance_settings)
            found = await anyio.to_thread.run_sync(
                lambda: self.aegis("services", "list", url=f"{nats_url}, ", namespace=namespace)
            )
        assert found.returncode == 0, found.stderr

    def test_unreachable_nats_exits_3(self) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        result = self.aegis("services", "list", "--timeout", "0.5", url=url)
        assert result.returncode == 3
        assert f"cannot reach NATS at {url}" in result.stderr
