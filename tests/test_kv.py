"""KVBucket additions used by the management actor: revisions by number, exact lists."""

from __future__ import annotations

from typing import Any

import anyio
import nats.js.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from aegis_actors import BucketNotFoundError, BucketSpec, Entry, KVBucket, StoreUnavailableError
from aegis_actors import _kv as kv
from aegis_actors._transport import store_errors

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

    async def test_lists_and_histories_create_no_consumer(
        self, bucket: KVBucket, nats_client: Client
    ) -> None:
        # A consumer per list reached the server's consumer limit under 8
        # clients listing in a loop (979 alive at once).
        await bucket.put("a", b"1")
        for _ in range(3):
            assert [e.key for e in await bucket.entries()] == ["a"]
            assert len(await bucket.history("a")) == 1
        assert await nats_client.jetstream().consumers_info(bucket.stream) == []


class TestExactLists:
    """A list names each key once, at its newest value, whatever writes land while it reads."""

    async def test_a_key_written_between_batches_is_listed_once_at_its_new_value(
        self, bucket: KVBucket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for key in "abcd":
            await bucket.put(key, b"old")
        monkeypatch.setattr(kv, "BATCH", 2)
        real = kv._direct_batch
        calls = 0

        async def write_after_first_batch(*args: Any) -> Any:
            nonlocal calls
            result = await real(*args)
            calls += 1
            if calls == 1:  # "a" was read; rewrite it, delete "b", add "e"
                await bucket.put("a", b"new")
                await bucket.delete("b")
                await bucket.put("e", b"new")
            return result

        monkeypatch.setattr(kv, "_direct_batch", write_after_first_batch)
        listed = await bucket.entries()
        assert [(e.key, e.value) for e in listed] == [
            ("a", b"new"),
            ("c", b"old"),
            ("d", b"old"),
            ("e", b"new"),
        ]
        assert calls > 2, "the read took several batches"

    async def test_more_keys_than_a_multi_last_get_answers_for_are_all_listed(
        self, bucket: KVBucket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(kv, "BATCH", 300)
        keys = [f"k{i:04d}" for i in range(kv.MULTI_LAST_MAX + 20)]
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(bucket.put, key, b"1")
        for key in keys[::7]:
            await bucket.put(key, b"2")  # history=2: the old revisions are kept too
        listed = await bucket.entries()
        assert [e.key for e in listed] == keys
        assert {e.key for e in listed if e.value == b"2"} == set(keys[::7])

    async def test_since_reads_every_kept_revision_of_a_range_in_batches(
        self, bucket: KVBucket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(kv, "BATCH", 2)
        for key, value in (("a", b"1"), ("b", b"2"), ("a", b"3"), ("c", b"4"), ("a", b"5")):
            await bucket.put(key, value)  # history=2: revision 1 ("a" = 1) is gone
        await bucket.delete("b")
        found = await bucket.since(1, 6)
        assert [(e.revision, e.key, e.value, e.deleted) for e in found] == [
            (2, "b", b"2", False),
            (3, "a", b"3", False),
            (4, "c", b"4", False),
            (5, "a", b"5", False),
            (6, "b", b"", True),
        ]
        assert [e.revision for e in await bucket.since(5, 6)] == [5, 6]

    async def test_history_reads_past_a_batch(
        self, bucket: KVBucket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(kv, "BATCH", 1)
        for value in (b"1", b"2", b"3"):
            await bucket.put("a", value)
        await bucket.put("b", b"x")
        assert [(e.value, e.revision) for e in await bucket.history("a")] == [(b"2", 2), (b"3", 3)]

    async def test_a_bucket_without_direct_gets_lists_through_a_consumer_each_key_once(
        self, nats_client: Client, namespace: str
    ) -> None:
        js = nats_client.jetstream()
        await js.create_key_value(bucket=f"{namespace}-nodirect", history=3)  # allow_direct off
        bucket = await KVBucket.ensure(js, BucketSpec(f"{namespace}-nodirect", history=3))
        for value in (b"1", b"2"):
            await bucket.put("a", value)
        await bucket.put("b", b"x")
        assert [(e.key, e.value) for e in await bucket.entries()] == [("a", b"2"), ("b", b"x")]
        assert [e.value for e in await bucket.history("a")] == [b"1", b"2"]

    async def test_a_bucket_opened_as_direct_without_direct_gets_still_lists(
        self, nats_client: Client, namespace: str
    ) -> None:
        js = nats_client.jetstream()
        await js.create_key_value(bucket=f"{namespace}-plain")  # allow_direct off
        bucket = KVBucket(js, f"{namespace}-plain")  # assumed direct: no responder answers
        await bucket.put("a", b"1")
        assert [e.key for e in await bucket.entries()] == ["a"]
        assert [e.value for e in await bucket.history("a")] == [b"1"]

    async def test_listing_a_bucket_that_does_not_exist_says_so(
        self, nats_client: Client, namespace: str
    ) -> None:
        with pytest.raises(BucketNotFoundError):
            await KVBucket(nats_client.jetstream(), f"{namespace}-missing").entries()


class TestNewestPerKey:
    """The consumer path keeps the newest revision of a key delivered twice."""

    @given(
        st.lists(
            st.tuples(st.sampled_from("abc"), st.integers(1, 50), st.booleans()),
            max_size=30,
        )
    )
    def test_each_key_once_at_its_highest_revision(
        self, deliveries: list[tuple[str, int, bool]]
    ) -> None:
        entries = [Entry(key, b"", revision, deleted) for key, revision, deleted in deliveries]
        newest = kv._newest_per_key(entries)
        assert [e.key for e in newest] == sorted({e.key for e in entries})
        for entry in newest:
            assert entry.revision == max(e.revision for e in entries if e.key == entry.key)


class TestStoreRefusals:
    """A server out of a resource (consumers, storage) is a store outage (503), not a bug (500)."""

    @pytest.mark.parametrize("err_code", [10023, 10026, 10047])
    def test_a_resource_limit_is_store_unavailable(self, err_code: int) -> None:
        refusal = nats.js.errors.BadRequestError(
            code=400, err_code=err_code, description="maximum consumers limit reached"
        )
        with pytest.raises(StoreUnavailableError, match="refused"), store_errors("b"):
            raise refusal

    def test_another_bad_request_stays_what_it_is(self) -> None:
        with pytest.raises(nats.js.errors.BadRequestError), store_errors("b"):
            raise nats.js.errors.BadRequestError(code=400, err_code=10052, description="bad")
