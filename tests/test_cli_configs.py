"""`aegis apps ...` and `aegis configs ...` against a real management actor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from aegis_actors import ActorSystem, InstanceSettings, ManagementService, start_instance
from aegis_actors._nats_server import free_port
from aegis_actors.cli._client import UsageError
from aegis_actors.cli.configs import parse_object
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
    settings = instance_settings.model_copy(update={"registration": False})

    @asynccontextmanager
    async def running() -> AsyncIterator[Cli]:
        async with ActorSystem() as system:
            await start_instance(system, ManagementService, settings)
            yield Cli(capsys, nats_url, settings.namespace)

    return running


@pytest.fixture
def value_file(tmp_path: Path) -> Callable[[Any], str]:
    """Writes a value (JSON, or text as is) to a file; returns its path."""
    count = 0

    def write(value: Any) -> str:
        nonlocal count
        count += 1
        path = tmp_path / f"value-{count}.json"
        path.write_text(value if isinstance(value, str) else json.dumps(value), "utf-8")
        return str(path)

    return write


class TestApps:
    """Applications by id or by name; tables by default, the envelope with --json."""

    async def test_create_get_update_delete_round_trip(self, open_cli: OpenCli) -> None:
        async with open_cli() as cli:
            code, out, _ = await cli("apps", "create", "billing", "--comments", "[red]pays[/red]")
            assert code == 0
            assert "created billing" in out
            assert "[red]pays[/red]" in out, "user text is shown as is, not as markup"

            got = await cli.json("apps", "get", "billing")
            assert got["status"] == 200
            app_id, revision = got["data"]["id"], got["revision"]
            assert (await cli.json("apps", "get", app_id))["data"] == got["data"]

            code, out, _ = await cli(
                "apps", "update", "billing", "--revision", str(revision), "--name", "payments"
            )
            assert code == 0
            assert "updated payments" in out
            code, out, err = await cli(
                "apps", "update", app_id, "--revision", str(revision), "--comments", "late"
            )
            assert (code, out) == (1, "")
            assert "409 REVISION_CONFLICT" in err

            code, _, err = await cli("apps", "get", "billing")
            assert code == 1
            assert "404 NOT_FOUND: no application named 'billing'" in err
            code, out, _ = await cli("apps", "delete", "payments")
            assert (code, out.strip()) == (0, "deleted payments")
            code, _, err = await cli("apps", "delete", app_id)
            assert code == 1
            assert "404 NOT_FOUND" in err

    async def test_get_shows_the_configurations_and_delete_says_they_went_too(
        self, open_cli: OpenCli
    ) -> None:
        async with open_cli() as cli:
            await cli.json("apps", "create", "billing")
            for name in ("db", "cache"):
                await cli.json("configs", "create", "billing", name, "--value", "{}")
            code, out, _ = await cli("apps", "get", "billing")
            assert code == 0
            assert "configurations  2" in out
            assert "CONFIGURATION" in out
            assert out.index("cache") < out.index("db")
            code, out, _ = await cli("apps", "delete", "billing")
            assert out.strip() == "deleted billing and its 2 configurations"
            assert (await cli.json("configs", "list"))["data"]["items"] == []

    async def test_list_shows_a_table_and_the_next_cursor(self, open_cli: OpenCli) -> None:
        async with open_cli() as cli:
            for name in ("shipping", "billing", "auth"):
                await cli.json("apps", "create", name)
            code, out, _ = await cli("apps", "list", "--limit", "2")
            assert code == 0
            assert "NAME" in out
            assert "CONFIGS" in out
            assert out.index("auth") < out.index("billing")
            assert "shipping" not in out
            assert "more: add --cursor" in out
            everything = await cli.json("apps", "list", "--limit", "1", "--all")
            assert [a["name"] for a in everything["data"]["items"]] == [
                "auth", "billing", "shipping"
            ]  # fmt: skip
            assert everything["data"]["nextCursor"] is None

    async def test_bad_names_and_usage_are_reported_with_exit_1_and_2(
        self, open_cli: OpenCli
    ) -> None:
        async with open_cli() as cli:
            code, out, err = await cli("apps", "create", "Bad.Name")
            assert (code, out) == (1, "")
            assert "422 VALIDATION_ERROR: name" in err
            assert "field: name, value: 'Bad.Name'" in err
            await cli.json("apps", "create", "billing")
            code, _, err = await cli("apps", "update", "billing", "--revision", "1")
            assert code == 2
            assert "nothing to change: give --name, --comments or both" in err
            code, out, _ = await cli("apps", "get", "nobody", "--json")
            assert code == 1
            assert json.loads(out)["error"]["code"] == "NOT_FOUND"


class TestConfigs:
    """Configurations by id or by APP NAME; values from --file or --value."""

    async def test_create_from_a_file_get_update_history_delete(
        self, open_cli: OpenCli, value_file: Callable[[Any], str]
    ) -> None:
        async with open_cli() as cli:
            await cli.json("apps", "create", "billing")
            path = value_file({"pool": 5, "host": "db.internal"})
            code, out, _ = await cli(
                "configs", "create", "billing", "db", "--file", path, "--comments", "the db"
            )
            assert code == 0
            assert "created db" in out
            assert '"host": "db.internal"' in out

            got = await cli.json("configs", "get", "billing", "db")
            config_id, revision = got["data"]["id"], got["revision"]
            assert got["data"]["config"] == {"pool": 5, "host": "db.internal"}
            assert got["data"]["comments"] == "the db"
            assert (await cli.json("configs", "get", config_id))["data"] == got["data"]
            by_app_id = await cli.json("configs", "get", got["data"]["applicationId"], "db")
            assert by_app_id["data"] == got["data"]

            code, out, _ = await cli(
                "configs", "update", "billing", "db", "--revision", str(revision),
                "--value", '{"pool": 9}',
            )  # fmt: skip
            assert code == 0
            assert '"pool": 9' in out
            code, _, err = await cli(
                "configs", "update", config_id, "--revision", str(revision), "--comments", "x"
            )
            assert code == 1
            assert "409 REVISION_CONFLICT" in err

            code, out, _ = await cli("configs", "history", "billing", "db")
            assert code == 0
            assert "2 revisions, newest first" in out
            assert out.index('{"pool": 9}') < out.index('{"pool": 5')
            history = await cli.json("configs", "history", config_id)
            assert [i["configuration"]["config"] for i in history["data"]["items"]] == [
                {"pool": 9},
                {"pool": 5, "host": "db.internal"},
            ]

            code, out, _ = await cli("configs", "delete", "billing", "db")
            assert (code, out.strip()) == (0, "deleted db")
            code, _, err = await cli("configs", "get", config_id)
            assert code == 1
            assert f"404 NOT_FOUND: no configuration {config_id}" in err

    async def test_list_of_one_application_or_all_names_the_applications(
        self, open_cli: OpenCli
    ) -> None:
        async with open_cli() as cli:
            for app in ("billing", "shipping"):
                await cli.json("apps", "create", app)
            await cli.json("configs", "create", "billing", "db", "--value", "{}")
            await cli.json("configs", "create", "shipping", "carriers", "--value", "{}")
            mine = await cli.json("configs", "list", "billing")
            assert [c["name"] for c in mine["data"]["items"]] == ["db"]
            code, out, _ = await cli("configs", "list")
            assert code == 0
            assert "APPLICATION" in out
            assert out.index("carriers") < out.index("db")
            assert "shipping" in out
            assert "billing" in out, "application names, not only ids"
            everything = await cli.json("configs", "list", "--limit", "1", "--all")
            assert [c["name"] for c in everything["data"]["items"]] == ["carriers", "db"]
            code, _, err = await cli("configs", "list", "nobody")
            assert code == 1
            assert "404 NOT_FOUND" in err

    async def test_a_value_that_is_not_a_json_object_is_a_usage_error(
        self, open_cli: OpenCli, value_file: Callable[[Any], str]
    ) -> None:
        cases = [
            (["--file", value_file([1, 2])], "must hold a JSON object ({...}), not an array"),
            (["--file", value_file('"text"')], "not a string"),
            (["--file", value_file("{pool: 5}")], "is not JSON: Expecting property name"),
            (["--file", value_file("")], "is not JSON"),
            (["--file", value_file('{"a": NaN}')], "NaN is not a JSON number"),
            (["--file", "/nonexistent/value.json"], "--file: cannot read /nonexistent/value.json"),
            (["--value", "null"], "--value must hold a JSON object ({...}), not null"),
            (["--value", "5"], "not a number"),
        ]
        async with open_cli() as cli:
            await cli.json("apps", "create", "billing")
            for argv, message in cases:
                code, out, err = await cli("configs", "create", "billing", "db", *argv)
                assert (code, out) == (2, ""), argv
                assert "usage: aegis configs create" in err, argv
                assert message in err, (argv, err)
            assert (await cli.json("configs", "list"))["data"]["items"] == [], "nothing sent"

    async def test_targets_and_changes_are_checked_before_any_request(
        self, open_cli: OpenCli
    ) -> None:
        async with open_cli() as cli:
            # A dead URL: exit 2, not 3, shows that nothing was even connected.
            cli.common[cli.common.index("--url") + 1] = f"nats://127.0.0.1:{free_port()}"
            code, _, err = await cli("configs", "get", "billing")
            assert code == 2
            assert "'billing' is not a configuration id" in err
            code, _, err = await cli("configs", "update", "billing", "db", "--revision", "1")
            assert code == 2
            assert "nothing to change" in err
            code, _, err = await cli("configs", "create", "billing", "db", "--value", "[]")
            assert code == 2
            code, _, _ = await cli("configs", "get", "billing", "db", "--timeout", "0.5")
            assert code == 3, "the same URL, when a request is made"

    async def test_server_side_rules_come_back_as_exit_1_with_the_field(
        self, open_cli: OpenCli, value_file: Callable[[Any], str]
    ) -> None:
        async with open_cli() as cli:
            await cli.json("apps", "create", "billing")
            code, _, err = await cli("configs", "create", "billing", "d.b", "--value", "{}")
            assert code == 1
            assert "field: name, value: 'd.b'" in err
            big = value_file({"k": "x" * (64 * 1024)})
            code, _, err = await cli("configs", "create", "billing", "big", "--file", big)
            assert code == 1
            assert "422 VALIDATION_ERROR: config: config is 65544 bytes as JSON" in err
            code, _, err = await cli("configs", "create", "nobody", "db", "--value", "{}")
            assert code == 1
            assert "404 NOT_FOUND: no application named 'nobody'" in err


class TestParseObject:
    """The value check the CLI makes before sending."""

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[]", "not an array"),
            ("true", "not true"),
            ('{"a": Infinity}', "Infinity is not a JSON number"),
            ('{"a": 1e400}', "1e400 is beyond a double"),
            ('{"a": 1} {"b": 2}', "Extra data"),
        ],
    )
    def test_anything_but_a_json_object_is_refused(self, text: str, message: str) -> None:
        with pytest.raises(UsageError, match=message):
            parse_object(text, "--value")

    def test_an_object_is_taken_as_is(self) -> None:
        text = '{"pool": 5, "ratio": 0.5, "hosts": ["a"], "tls": {"on": true}, "x": null}'
        assert parse_object(text, "--value") == json.loads(text)


class TestProcess:
    """The installed entry point, with the value from a file and from stdin."""

    def aegis(
        self, *argv: str, url: str, namespace: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AEGIS_NATS_URL": url, "AEGIS_NAMESPACE": namespace}
        return subprocess.run(
            [sys.executable, "-m", "aegis_actors", *argv],
            capture_output=True,
            text=True,
            env=env,
            input=stdin,
            timeout=30,
            check=False,
        )

    async def test_a_script_creates_from_stdin_and_reads_back_by_name(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        namespace = instance_settings.namespace

        def script() -> list[subprocess.CompletedProcess[str]]:
            return [
                self.aegis("apps", "create", "billing", url=nats_url, namespace=namespace),
                self.aegis(
                    "configs", "create", "billing", "db", "--file", "-", "--json",
                    url=nats_url, namespace=namespace, stdin='{"pool": 5}',
                ),
                self.aegis(
                    "configs", "create", "billing", "db", "--file", "-",
                    url=nats_url, namespace=namespace, stdin="[1, 2]",
                ),
            ]  # fmt: skip

        async with ActorSystem() as system:
            await start_instance(system, ManagementService, instance_settings)
            created_app, created, refused = await anyio.to_thread.run_sync(script)
        assert created_app.returncode == 0, created_app.stderr
        assert "created billing" in created_app.stdout
        assert created.returncode == 0, created.stderr
        reply = json.loads(created.stdout)
        assert (reply["status"], reply["data"]["config"]) == (201, {"pool": 5})
        assert refused.returncode == 2
        assert "stdin must hold a JSON object ({...}), not an array" in refused.stderr
