"""The CLI connects with every kind of credential, says "denied" with its own exit code,
and never prints a secret; `aegis auth` writes roles a nats-server takes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    ManagementService,
    NatsServer,
    start_instance,
)
from aegis_actors._auth import Credential, ServiceGrants, fleet_roles, render
from aegis_actors.cli import build_parser
from tests.secure_support import nkey_seed, operator_mode, secret

pytestmark = pytest.mark.nats

ROOT = Path(__file__).resolve().parents[1]
VARIABLES = ("USER", "PASSWORD", "TOKEN", "CREDS_FILE", "NKEY_SEED", "INBOX_PREFIX", "URL")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def secured(keys: Path) -> Iterator[NatsServer]:
    """Roles for aegis-mgmt: the viewer is an NKey user, the rest have passwords."""
    roles = fleet_roles([ServiceGrants("aegis-mgmt")])
    _, viewer = nkey_seed(keys, "viewer")
    credentials = {r.name: Credential(password=secret(r.user)) for r in roles}
    credentials["viewer"] = Credential(nkey=viewer)
    with NatsServer(extra_config=render(roles, credentials)) as server:
        yield server


@asynccontextmanager
async def mgmt(secured: NatsServer) -> AsyncIterator[None]:
    """An aegis-mgmt instance with its own credential (a context, not a fixture: an
    ActorSystem is left in the task that entered it)."""
    settings = InstanceSettings(
        nats=ConnectionSettings(url=secured.url, user="aegis-mgmt", password=secret("aegis-mgmt"))
    )
    async with ActorSystem() as system:
        await start_instance(system, ManagementService, settings)
        yield


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(f"AEGIS_NATS_{name}", raising=False)


async def aegis(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run a command in-process; its exit code, and all it printed and logged."""
    args = build_parser().parse_args(argv)

    def run() -> tuple[int, list[Any]]:
        with capture_logs() as logs:
            code: int = args.handler(args)
        return code, logs

    capsys.readouterr()
    code, logs = await anyio.to_thread.run_sync(run)
    out, err = capsys.readouterr()
    return code, f"{out}\n{err}\n{logs!r}"


def assert_no_secret(text: str) -> None:
    found = re.findall(r"S3cret-[a-z-]+-Xq9", text)
    assert not found, f"a secret was printed: {found}"


class TestEveryCredentialKind:
    """user/password (options, variables, URL), NKey, token and creds file all connect."""

    async def test_user_and_password_three_ways(
        self, secured: NatsServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        async with mgmt(secured):
            password = secret("admin")
            code, out = await aegis(
                capsys, "services", "list", "--url", secured.url, "--user", "admin",
                "--password", password,
            )  # fmt: skip
            assert code == 0, out
            url = secured.url.replace("nats://", f"nats://admin:{password}@")
            assert (await aegis(capsys, "services", "list", "--url", url))[0] == 0
            monkeypatch.setenv("AEGIS_NATS_URL", secured.url)
            monkeypatch.setenv("AEGIS_NATS_USER", "admin")
            monkeypatch.setenv("AEGIS_NATS_PASSWORD", password)
            code, out = await aegis(capsys, "services", "list")
            assert code == 0, out
            assert_no_secret(out)

    async def test_nkey_from_option_and_variable_and_a_viewer_refused_with_exit_4(
        self, secured: NatsServer, keys: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        async with mgmt(secured):
            seed = str(keys / "viewer.nk")
            code, out = await aegis(
                capsys, "services", "list", "--url", secured.url, "--nkey", seed
            )
            assert code == 0, out
            monkeypatch.setenv("AEGIS_NATS_NKEY_SEED", seed)
            code, out = await aegis(capsys, "services", "delete", "orders", "--url", secured.url)
            assert code == 4, out
            assert "403 PERMISSION_DENIED" in out
            assert "aegis.mgmt.services.delete" in out
            assert "(viewer.nk)" in out

    async def test_token(self, capsys: pytest.CaptureFixture[str]) -> None:
        with NatsServer(extra_config='authorization { token: "S3cret-token-Xq9" }') as server:
            # Authenticated, and nobody serves the API: 503 (exit 1), not "unreachable" (3).
            code, out = await aegis(
                capsys, "services", "list", "--url", server.url, "--token", "S3cret-token-Xq9"
            )
            assert code == 1, out
            assert "SERVICE_UNAVAILABLE" in out
            code, out = await aegis(
                capsys, "services", "list", "--url", server.url, "--token", "S3cret-wrong-Xq9"
            )
            assert code == 3, out
            assert_no_secret(out)

    async def test_creds_file_of_operator_mode(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        operator = operator_mode(tmp_path, publish=["aegis.mgmt.services.list"])
        with NatsServer(extra_config=operator.server_config) as server:
            code, out = await aegis(
                capsys, "services", "list", "--url", server.url, "--creds", str(operator.creds)
            )
            assert code == 1, out
            assert "SERVICE_UNAVAILABLE" in out
            monkeypatch.setenv("AEGIS_NATS_CREDS_FILE", str(operator.creds))
            code, out = await aegis(capsys, "services", "delete", "orders", "--url", server.url)
            assert code == 4, out
            assert f"creds {operator.user_public_key} (cli.creds)" in out

    @pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
    async def test_mutual_tls(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        ca, server_cert, server_key, client_cert, client_key = certificates(tmp_path)
        tls = (
            f'tls {{ cert_file: "{server_cert}", key_file: "{server_key}", '
            f'ca_file: "{ca}", verify: true }}'
        )
        with NatsServer(extra_config=tls) as server:
            url = server.url.replace("nats://", "tls://")
            code, out = await aegis(
                capsys, "services", "list", "--url", url, "--ca", str(ca),
                "--cert", str(client_cert), "--key", str(client_key),
            )  # fmt: skip
            assert code == 1, out  # connected; nobody serves the API
            assert "SERVICE_UNAVAILABLE" in out
            code, out = await aegis(capsys, "services", "list", "--url", url, "--ca", str(ca))
            assert code == 3, out  # no client certificate: refused

    async def test_options_that_do_not_go_together_are_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out = await aegis(
            capsys, "services", "list", "--user", "a", "--token", "S3cret-token-Xq9"
        )
        assert code == 2, out
        assert "not several" in out
        assert_no_secret(out)


def certificates(folder: Path) -> tuple[Path, ...]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""

    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=aegis-test-ca")  # fmt: skip
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", "ext.cnf")  # fmt: skip
    return tuple(
        folder / f for f in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    )


class TestNoSecretIsPrinted:
    """Everything the CLI and `aegis run` print and log, scanned for the passwords."""

    async def test_client_commands(
        self, secured: NatsServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        async with mgmt(secured):
            password = secret("admin")
            url = secured.url.replace("nats://", f"nats://admin:{password}@")
            wrong = secured.url.replace("nats://", "nats://admin:S3cret-wrong-Xq9@")
            printed = []
            for argv in (
                ("services", "list", "--url", url),
                ("instances", "list", "--url", url, "--json"),
                ("top", "--once", "--interval", "0.01", "--url", url),
                ("call", "aegis-mgmt", "nope", "--url", url),
                ("services", "list", "--url", wrong, "--timeout", "1"),
                ("top", "--once", "--url", wrong, "--timeout", "1"),
            ):
                _, out = await aegis(capsys, "--log-level", "debug", *argv)
                printed.append(out)
            text = "\n".join(printed)
            assert_no_secret(text)
            assert "nats://admin:***@127.0.0.1" in text  # aegis top's header, the connect error

    def test_aegis_run_and_its_check(self, secured: NatsServer, tmp_path: Path) -> None:
        password = secret("aegis-mgmt")
        url = secured.url.replace("nats://", f"nats://aegis-mgmt:{password}@")
        config = tmp_path / "fleet.toml"
        config.write_text(
            f'[nats]\nurl = "{url}"\n[[services]]\nclass = "aegis_actors:ManagementService"\n'
        )
        command = [sys.executable, "-m", "aegis_actors", "--log-level", "debug", "run"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
        check = subprocess.run(
            [*command, str(config), "--check"], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert check.returncode == 0, check.stderr
        with subprocess.Popen(
            [*command, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env, cwd=ROOT,
        ) as process:  # fmt: skip
            assert process.stdout is not None
            lines = []
            for line in process.stdout:  # until the fleet says it runs
                lines.append(line)
                if "running" in line:
                    break
            process.send_signal(signal.SIGINT)
            rest, _ = process.communicate(timeout=30)
        text = check.stdout + check.stderr + "".join(lines) + rest
        assert process.returncode == 0, text
        assert_no_secret(text)
        assert "nats://aegis-mgmt:***@127.0.0.1" in text
        assert "nats connected" in text


class TestAegisAuth:
    """`aegis auth` writes roles a nats-server starts with, and keeps its NKeys."""

    async def test_nkeys_are_made_once_and_the_server_takes_the_block(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        block = tmp_path / "auth.conf"
        argv = ("auth", str(ROOT / "config" / "showcase.toml"), "--nkeys", str(tmp_path / "k"))
        code, out = await aegis(capsys, *argv, "-o", str(block))
        assert code == 0, out
        first = block.read_text()
        seeds = sorted((tmp_path / "k").iterdir())
        assert [s.name for s in seeds] == [
            f"{n}.nk" for n in sorted(("admin", "viewer", "client", "aegis-mgmt",
                                       "pricing-service", "risk-service", "order-service"))
        ]  # fmt: skip
        assert all(s.stat().st_mode & 0o777 == 0o600 for s in seeds)
        code, _ = await aegis(capsys, *argv, "-o", str(block))
        assert block.read_text() == first  # the same keys on a second run
        with NatsServer(extra_config=first) as server:
            assert server.running

    async def test_a_service_named_like_a_role_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out = await aegis(capsys, "auth", "--service", "viewer")
        assert code == 2
        assert "name of a role" in out
