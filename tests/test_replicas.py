"""aegis buckets on a JetStream cluster: three copies, so losing one server loses nothing."""

from __future__ import annotations

import dataclasses

import anyio
import pytest
from nats.aio.client import Client as NatsClient
from structlog.testing import capture_logs

from aegis_actors import (
    ActorSystem,
    BucketSpec,
    Client,
    ConnectionSettings,
    Entry,
    HeartbeatSettings,
    InstanceStatus,
    KVBucket,
    NatsCluster,
    ServiceInstance,
    StoreUnavailableError,
    connect,
)
from aegis_actors._buckets import Buckets, instance_key
from aegis_actors._configuration.records import configuration_bucket_spec
from aegis_actors._kv import CLUSTER_REPLICAS
from aegis_actors._mgmt.definitions import definitions_bucket_spec
from aegis_actors._registry.store import registry_bucket_spec
from tests.discovery_support import instance_settings, start_fleet

pytestmark = pytest.mark.nats


def specs(namespace: str) -> list[BucketSpec]:
    buckets = Buckets(namespace)
    return [
        registry_bucket_spec(buckets),
        definitions_bucket_spec(buckets),
        configuration_bucket_spec(buckets),
    ]


async def replicas(client: NatsClient, spec: BucketSpec) -> int:
    bucket = await KVBucket.ensure(client.jetstream(timeout=5), spec)
    info = await bucket.js.stream_info(bucket.stream)
    return info.config.num_replicas


class TestPlacement:
    async def test_one_copy_on_a_single_server(
        self, nats_client: NatsClient, namespace: str
    ) -> None:
        assert [await replicas(nats_client, s) for s in specs(namespace)] == [1, 1, 1]

    async def test_three_copies_on_a_cluster_unless_the_spec_says_otherwise(
        self, nats_cluster: NatsCluster, namespace: str
    ) -> None:
        nc = await connect(ConnectionSettings(url=nats_cluster.urls[0]))
        try:
            made = [await replicas(nc, s) for s in specs(namespace)]
            one = dataclasses.replace(registry_bucket_spec(Buckets(namespace + "one")), replicas=1)
            assert await replicas(nc, one) == 1
            # An existing one-copy bucket is used, with a warning saying how to fix it.
            with capture_logs() as logs:
                assert await replicas(nc, dataclasses.replace(one, replicas=None)) == 1
        finally:
            await nc.close()
        assert made == [CLUSTER_REPLICAS] * 3
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [e["bucket"] for e in warnings] == [one.name]
        assert "--replicas 3" in warnings[0]["fix"]


class TestLosingAServer:
    async def test_calls_and_heartbeats_go_on_when_the_registrys_leader_dies(
        self, namespace: str
    ) -> None:
        with NatsCluster(3, name=f"{namespace}-r3") as cluster:
            settings = instance_settings(list(cluster.urls), namespace).model_copy(
                update={"heartbeat": HeartbeatSettings(ttl=4, interval=0.5), "kv_timeout": 1.0}
            )
            async with ActorSystem() as system:
                (echo,) = await start_fleet(system, 1, settings)
                watcher = await connect(ConnectionSettings(url=list(cluster.urls)))
                try:
                    js = watcher.jetstream(timeout=5)
                    bucket = await KVBucket.ensure(js, registry_bucket_spec(Buckets(namespace)))
                    key = instance_key("echo", echo.instance_id)
                    info = await js.stream_info(bucket.stream)
                    assert info.config.num_replicas == 3
                    assert info.cluster is not None
                    (leader,) = [s for s in cluster.servers if s.name == info.cluster.leader]
                    survivor = next(s for s in cluster.servers if s is not leader)
                    async with Client(url=survivor.url, namespace=namespace, kv_timeout=2.0) as c:
                        await c.wait_for_instances("echo")
                        before = await bucket.get(key)
                        assert before is not None
                        await anyio.to_thread.run_sync(leader.kill)
                        # A new leader is elected; the heartbeat writes ACTIVE again, and a
                        # caller that never saw the instance finds it.
                        with anyio.fail_after(20):
                            await _newer_than(bucket, key, before.revision)
                        async with Client(
                            url=survivor.url, namespace=namespace, kv_timeout=2.0
                        ) as fresh:
                            assert await fresh.call("echo", "whoami") == echo.instance_id
                        assert await c.call("echo", "whoami") == echo.instance_id
                finally:
                    await watcher.close()


async def _newer_than(bucket: KVBucket, key: str, revision: int) -> None:
    """Return once `key` holds an ACTIVE record written after `revision`.

    (While the stream elects a leader, heartbeats fail; past the failure
    threshold the instance writes itself UNHEALTHY, then ACTIVE again.)
    A leader election sends no event to wait on, so this polls; the caller
    bounds it in time.
    """
    while not _active_after(await _read(bucket, key), revision):  # noqa: ASYNC110
        await anyio.sleep(0.2)


def _active_after(entry: Entry | None, revision: int) -> bool:
    if entry is None or entry.revision <= revision:
        return False
    return ServiceInstance.model_validate_json(entry.value).status is InstanceStatus.ACTIVE


async def _read(bucket: KVBucket, key: str) -> Entry | None:
    """The entry, or None while the stream has no leader (reads fail for a moment)."""
    try:
        return await bucket.get(key)
    except StoreUnavailableError:
        return None
