"""KVBucket additions used by the management actor: revisions by number, tidy replays."""

from __future__ import annotations

import anyio
import pytest
from nats.aio.client import Client

from aegis_actors import BucketSpec, KVBucket

pytestmark = pytest.mark.nats


@pytest.fixture
async def bucket(nats_client: Client, namespace: str) -> KVBucket:
    return await KVBucket.ensure(nats_client.jetstream(), BucketSpec(f"{namespace}-kv", history=2))


class TestRevisions:
    """`last_revision` counts every write; `at` reads one revision whatever its key."""

    async def test_an_empty_bucket_is_at_revision_zero(self, bucket: KVBucket) -> None:
        assert await bucket.last_revision() == 0

    async def test_every_write_and_delete_raises_the_last_revision(self, bucket: KVBucket) -> None:
        first = await bucket.put("a", b"1")
        second = await bucket.put("b", b"2")
        await bucket.delete("a")
        assert (first, second) == (1, 2)
        assert await bucket.last_revision() == 3

    async def test_at_reads_values_and_tombstones_of_any_key(self, bucket: KVBucket) -> None:
        await bucket.put("a", b"1")
        await bucket.put("b", b"2")
        await bucket.delete("a")
        one, two, three = [await bucket.at(r) for r in (1, 2, 3)]
        assert one is not None
        assert (one.key, one.value, one.deleted) == ("a", b"1", False)
        assert two is not None
        assert (two.key, two.value) == ("b", b"2")
        assert three is not None
        assert (three.key, three.deleted) == ("a", True)

    async def test_at_a_revision_no_longer_kept_or_not_yet_written_is_none(
        self, bucket: KVBucket
    ) -> None:
        for value in (b"1", b"2", b"3"):  # history=2: revision 1 is dropped
            await bucket.put("a", value)
        assert await bucket.at(1) is None
        assert await bucket.at(4) is None
        assert await bucket.at(3) is not None


class TestReplays:
    """`entries()` reads every key, every time, and leaves no consumer behind for minutes."""

    async def test_a_replay_is_never_cut_short(self, bucket: KVBucket) -> None:
        # nats-py's watch() came back empty about once in 100 replays of this
        # bucket (nats.py #842); 200 replays caught that in about 1 run of 3.
        async with anyio.create_task_group() as tg:
            for i in range(101):
                tg.start_soon(bucket.put, f"k{i:03d}", b"v")
        for _ in range(200):
            assert len(await bucket.entries()) == 101

    async def test_history_lists_every_kept_revision_oldest_first(self, bucket: KVBucket) -> None:
        for value in (b"1", b"2", b"3"):
            await bucket.put("a", value)
        await bucket.put("b", b"x")
        assert [(e.value, e.revision) for e in await bucket.history("a")] == [(b"2", 2), (b"3", 3)]

    async def test_replays_of_empty_and_deleted_keys(self, bucket: KVBucket) -> None:
        assert await bucket.entries() == []
        await bucket.put("a", b"1")
        await bucket.delete("a")
        assert await bucket.entries() == []
        assert [e.deleted for e in await bucket.history("a")] == [False, True]

    async def test_replay_consumers_are_short_lived(
        self, bucket: KVBucket, nats_client: Client
    ) -> None:
        await bucket.put("a", b"1")
        for _ in range(3):
            assert [e.key for e in await bucket.entries()] == ["a"]
        config = None
        js = nats_client.jetstream()
        for consumer in await js.consumers_info(bucket.stream):
            config = consumer.config
            # nats-py's default would be 300 s; the server deletes these soon after.
            assert config.inactive_threshold is not None
            assert config.inactive_threshold <= 2.0
        assert config is not None, "the replays' consumers are still there to inspect"
