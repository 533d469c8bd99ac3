"""The embedded nats-server: start, kill, pause, restart, clusters, clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import nats
import nats.errors
import pytest
from nats.aio.client import Client

from aegis_actors import NatsCluster, NatsServer, NatsServerError, PortInUseError
from aegis_actors._nats_server import find_binary

pytestmark = pytest.mark.nats


@asynccontextmanager
async def _client(url: str, reconnected: anyio.Event | None = None) -> AsyncIterator[Client]:
    async def on_reconnected() -> None:
        if reconnected is not None:
            reconnected.set()

    client = await nats.connect(
        url,
        connect_timeout=2,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.05,
        reconnected_cb=on_reconnected,
    )
    try:
        yield client
    finally:
        await client.close()


class TestSingleServer:
    """One server on a free loopback port with JetStream in a temporary folder."""

    async def test_starts_ready_for_jetstream_and_cleans_up(self) -> None:
        server = NatsServer().start()
        store = server.store_dir
        try:
            assert server.url.startswith("nats://127.0.0.1:")
            async with _client(server.url) as client:
                kv = await client.jetstream().create_key_value(bucket="ready")
                await kv.put("k", b"v")
        finally:
            server.close()
        assert not server.running
        assert not store.exists()

    async def test_restart_keeps_the_port_and_the_store(self, own_nats_server: NatsServer) -> None:
        port = own_nats_server.port
        reconnected = anyio.Event()
        async with _client(own_nats_server.url, reconnected) as client:
            kv = await client.jetstream().create_key_value(bucket="durable")
            await kv.put("k", b"kept")
            own_nats_server.kill()
            own_nats_server.start()
            assert own_nats_server.port == port
            with anyio.fail_after(10):
                await reconnected.wait()
            entry = await kv.get("k")
        assert entry.value == b"kept"

    async def test_a_paused_server_stops_answering_until_resumed(
        self, own_nats_server: NatsServer
    ) -> None:
        async with _client(own_nats_server.url) as client:
            # Not flush(): a flush that times out breaks nats-py's read loop when
            # the late PONG arrives (InvalidStateError in _process_pong).
            with own_nats_server.paused(), pytest.raises(nats.errors.TimeoutError):
                await client.request("$JS.API.INFO", b"", timeout=0.2)
            reply = await client.request("$JS.API.INFO", b"", timeout=5)
            assert b"io.nats.jetstream.api.v1.account_info_response" in reply.data

    def test_a_taken_port_is_a_clear_error(self, nats_server: NatsServer) -> None:
        taken = f"port {nats_server.port} .* already in use"
        with pytest.raises(PortInUseError, match=taken) as info:
            NatsServer(port=nats_server.port).start()
        assert info.value.port == nats_server.port
        assert isinstance(info.value, NatsServerError)
        # How to pick another port is the caller's to say: an option, a config key...
        assert "--port" not in str(info.value)

    def test_aegis_server_on_a_taken_port_points_at_its_port_option(
        self, nats_server: NatsServer
    ) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "aegis_actors", "server", "--port", str(nats_server.port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 1
        assert f"port {nats_server.port} on 127.0.0.1 is already in use" in result.stderr
        assert "pick another with --port, or 0 for a free one" in result.stderr

    def test_a_missing_binary_is_a_clear_error(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("AEGIS_NATS_SERVER", str(tmp_path / "no-such-binary"))
        with pytest.raises(NatsServerError, match="not an executable"):
            find_binary()

    def test_a_bad_config_shows_the_server_log(self) -> None:
        server = NatsServer(extra_config="this is { not valid")
        try:
            with pytest.raises(NatsServerError, match="exited during start-up"):
                server.start()
        finally:
            server.close()


@pytest.mark.cluster
class TestCluster:
    """Three servers routed together form one JetStream cluster."""

    async def test_a_replicated_bucket_is_readable_from_every_node(
        self, nats_cluster: NatsCluster
    ) -> None:
        async with _client(nats_cluster.urls[0]) as first:
            kv = await first.jetstream().create_key_value(bucket="replicated", replicas=3)
            await kv.put("k", b"everywhere")
            for url in nats_cluster.urls[1:]:
                async with _client(url) as other:
                    entry = await (await other.jetstream().key_value("replicated")).get("k")
                    assert entry.value == b"everywhere"
            await first.jetstream().delete_key_value("replicated")

    def test_an_empty_cluster_is_refused(self) -> None:
        with pytest.raises(NatsServerError, match="at least one"):
            NatsCluster(0)
