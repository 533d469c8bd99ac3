"""The ConnectionActor: connect, authenticate, reconnect forever, fail fast at first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from aegis_actors import Actor, ActorStartError, ActorSystem, NatsUnavailableError
from aegis_actors.connection import (
    ConnectionActor,
    ConnectionSettings,
    GetStatus,
    WatchConnection,
    connect,
)
from aegis_actors.server import NatsServer, free_port

pytestmark = pytest.mark.nats


class TestSettings:
    """Bad connection settings are refused with a message that says what is wrong."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"password": "x"}, "password needs user"),
            ({"user": "u", "token": "t"}, "one of user/password, token or creds_file"),
            ({"creds_file": "/no/such.creds"}, "does not exist"),
            ({"reconnect_wait_min": 2, "reconnect_wait_max": 1}, "reconnect_wait_max"),
            ({"connect_timeout": 0}, "greater than 0"),
            ({"bogus": 1}, "Extra inputs are not permitted"),
        ],
    )
    def test_invalid_settings(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            ConnectionSettings.model_validate(kwargs)

    def test_secrets_do_not_show_in_repr(self) -> None:
        settings = ConnectionSettings(user="u", password="hunter2")  # type: ignore[arg-type]
        assert "hunter2" not in repr(settings)


class TestConnectionActor:
    """Owns the client; reports status; reconnects after a server restart."""

    async def test_reports_status(self, nats_url: str) -> None:
        async with ActorSystem() as system:
            ref = await system.spawn(
                lambda: ConnectionActor(ConnectionSettings(url=nats_url)), name="conn"
            )
            status = await ref.ask(GetStatus())
            assert status.connected
            assert status.url == nats_url

    async def test_unreachable_server_fails_the_start_quickly_and_clearly(self) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        settings = ConnectionSettings(url=url, initial_connect_timeout=0.3, connect_timeout=0.1)
        async with ActorSystem() as system:
            with pytest.raises(ActorStartError) as info:
                await system.spawn(lambda: ConnectionActor(settings), name="conn")
        assert isinstance(info.value.reason, NatsUnavailableError)
        assert url in str(info.value.reason)

    async def test_reconnects_after_the_server_restarts_and_logs_it(
        self, own_nats_server: NatsServer
    ) -> None:
        settings = ConnectionSettings(
            url=own_nats_server.url, reconnect_wait_min=0.02, reconnect_wait_max=0.1
        )
        changes: list[bool] = []
        back = anyio.Event()

        class Watcher(Actor):
            async def on_receive(self, message: Any) -> Any:
                changes.append(message.connected)
                if message.connected:
                    back.set()

        async with ActorSystem() as system:
            ref = await system.spawn(lambda: ConnectionActor(settings), name="conn")
            watcher = await system.spawn(Watcher, name="watcher")
            await ref.ask(WatchConnection(watcher))
            with capture_logs() as logs:
                own_nats_server.kill()
                own_nats_server.start()
                with anyio.fail_after(10):
                    await back.wait()
            status = await ref.ask(GetStatus())
        assert changes == [False, True]
        assert status.connected
        assert status.reconnects >= 1
        events = [e["event"] for e in logs]
        assert events.index("nats disconnected") < events.index("nats reconnected")


class TestAuthentication:
    """Token and user/password reach the server; a wrong secret is a clear error."""

    @pytest.fixture
    def secured_server(self) -> NatsServer:
        server = NatsServer(extra_config='authorization { token: "s3cret" }').start()
        yield server  # type: ignore[misc]
        server.close()

    async def test_token(self, secured_server: NatsServer) -> None:
        client = await connect(ConnectionSettings(url=secured_server.url, token="s3cret"))  # type: ignore[arg-type]
        assert client.is_connected
        await client.close()

    async def test_wrong_token_is_refused(self, secured_server: NatsServer) -> None:
        settings = ConnectionSettings(
            url=secured_server.url,
            token="wrong",
            initial_connect_timeout=1.0,  # type: ignore[arg-type]
        )
        with pytest.raises(NatsUnavailableError):
            await connect(settings)

    async def test_user_and_password(self, tmp_path: Path) -> None:
        config = 'authorization { users: [ { user: "alice", password: "pw" } ] }'
        with NatsServer(extra_config=config) as server:
            client = await connect(
                ConnectionSettings(url=server.url, user="alice", password="pw")  # type: ignore[arg-type]
            )
            assert client.is_connected
            await client.close()
