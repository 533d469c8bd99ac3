"""The ConnectionActor: connect, authenticate, reconnect forever, fail fast at first."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from aegis_actors import (
    Actor,
    ActorStartError,
    ActorSystem,
    ConnectionSettings,
    NatsCluster,
    NatsServer,
    NatsUnavailableError,
    connect,
)
from aegis_actors._backoff import Backoff
from aegis_actors._connection import ConnectionActor, GetStatus, WatchConnection, next_server_to_try
from aegis_actors._nats_server import free_port

pytestmark = pytest.mark.nats


class TestSettings:
    """Bad connection settings are refused with a message that says what is wrong."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"password": "x"}, "password needs user"),
            ({"user": "u", "token": "t"}, "one of user/password, token, creds_file or nkey_seed"),
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


class TestClusterFailover:
    """A client of a cluster moves to a live server whichever server dies."""

    def test_the_server_tried_least_is_next_and_waits_grow_with_its_failures(self) -> None:
        backoff = Backoff(base=0.1, cap=5.0, jitter=0.0)
        pool = [Server("nats://a:4222", 3), Server("nats://b:4222", 0), Server("nats://c:4222", 1)]
        chosen, wait = next_server_to_try(pool, backoff)
        assert (chosen.uri, wait) == ("nats://b:4222", pytest.approx(0.1))
        pool[1].reconnects = 4
        chosen, wait = next_server_to_try(pool, backoff)
        assert (chosen.uri, wait) == ("nats://c:4222", pytest.approx(0.2))

    async def test_killing_the_connected_server_three_times_moves_the_client_each_time(
        self, namespace: str
    ) -> None:
        # Before the fix a client stayed on its dead server whenever nats-py's
        # shuffled pool had it first (one time in three per kill).
        with NatsCluster(3, name=f"{namespace}-failover") as cluster:
            settings = ConnectionSettings(
                url=list(cluster.urls), reconnect_wait_min=0.02, reconnect_wait_max=0.2
            )
            reconnected = anyio.Event()

            async def on_reconnected() -> None:
                reconnected.set()

            client = await connect(settings, on_reconnected=on_reconnected)
            try:
                for _ in range(3):
                    port = client.connected_url.port if client.connected_url else None
                    (victim,) = [s for s in cluster.servers if s.port == port]
                    await anyio.to_thread.run_sync(victim.kill)
                    with anyio.fail_after(10):
                        await reconnected.wait()
                    reconnected = anyio.Event()
                    assert client.connected_url is not None
                    assert client.connected_url.port != port
                    await client.flush(timeout=5)
                    await anyio.to_thread.run_sync(functools.partial(victim.start, wait=False))
            finally:
                await client.close()


@dataclass
class Server:
    """What nats-py passes a reconnect handler: a server's address and failed attempts."""

    uri: str
    reconnects: int


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
