"""DefinitionIndex: pages sorted by name that reflect every write made before the read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from structlog.testing import capture_logs

from aegis_actors import BucketSpec, ConnectionSettings, KVBucket, ServiceDefinition, connect
from aegis_actors._buckets import Buckets
from aegis_actors._mgmt.definitions import DefinitionStore, definitions_bucket_spec, encode
from aegis_actors._mgmt.listing import DefinitionIndex

pytestmark = pytest.mark.nats

BIG = 1024 * 1024
WHEN = datetime(2025, 8, 2, 10, 30, tzinfo=UTC)


def definition(name: str, description: str = "") -> bytes:
    return encode(
        ServiceDefinition(
            service_name=name,
            owner="team",
            description=description,
            version="1.0.0",
            created_at=WHEN,
            updated_at=WHEN,
        )
    )


def definitions_bucket_spec_of(bucket: KVBucket) -> BucketSpec:
    return BucketSpec(bucket.name, history=5)


def parse(page: bytes) -> tuple[list[str], str | None]:
    data = json.loads(page)
    return [item["serviceName"] for item in data["items"]], data["nextCursor"]


@pytest.fixture
async def bucket(nats_client: Client, namespace: str) -> KVBucket:
    store = await DefinitionStore.open(nats_client.jetstream(), Buckets(namespace))
    return store.bucket


async def put_all(bucket: KVBucket, names: list[str]) -> None:
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(bucket.put, name, definition(name))


class TestPages:
    """Sorted by name; `limit` per page; `nextCursor` until the last page, then null."""

    async def test_pages_walk_every_definition_once_in_order(self, bucket: KVBucket) -> None:
        names = [f"svc-{i:03d}" for i in range(25)]
        await put_all(bucket, list(reversed(names)))
        index = DefinitionIndex(bucket)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            items, cursor = parse(await index.page(10, cursor, BIG))
            seen += items
            pages += 1
            if cursor is None:
                break
        assert seen == names
        assert pages == 3

    async def test_a_last_page_that_is_exactly_full_has_no_cursor(self, bucket: KVBucket) -> None:
        await put_all(bucket, ["aaa", "bbb"])
        assert parse(await DefinitionIndex(bucket).page(2, None, BIG)) == (["aaa", "bbb"], None)

    async def test_a_cursor_need_not_exist(self, bucket: KVBucket) -> None:
        await put_all(bucket, ["aaa", "ccc", "eee"])
        assert parse(await DefinitionIndex(bucket).page(10, "bbb", BIG)) == (["ccc", "eee"], None)

    async def test_an_empty_bucket_gives_an_empty_page(self, bucket: KVBucket) -> None:
        assert parse(await DefinitionIndex(bucket).page(10, None, BIG)) == ([], None)

    async def test_a_page_is_cut_short_to_fit_in_one_message(self, bucket: KVBucket) -> None:
        names = [f"svc-{i:02d}" for i in range(12)]
        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(bucket.put, name, definition(name, "é" * 500))
        index = DefinitionIndex(bucket)
        budget = 4 * len(definition("svc-00", "é" * 500)) + 200
        seen: list[str] = []
        cursor = None
        while True:
            page = await index.page(1000, cursor, budget)
            assert len(page) <= budget
            items, cursor = parse(page)
            assert 1 <= len(items) <= 4
            seen += items
            if cursor is None:
                break
        assert seen == names


class TestFreshness:
    """Each read catches up with the bucket: by revision when few changed, else by a reload."""

    async def test_writes_after_the_first_read_are_caught_up_without_a_reload(
        self, bucket: KVBucket
    ) -> None:
        await put_all(bucket, ["aaa", "bbb", "ccc"])
        index = DefinitionIndex(bucket)
        await index.refresh()
        await bucket.put("abc", definition("abc"))
        await bucket.delete("bbb")
        await bucket.put("ccc", definition("ccc", "changed"))
        page = json.loads(await index.page(10, None, BIG))
        assert [i["serviceName"] for i in page["items"]] == ["aaa", "abc", "ccc"]
        assert page["items"][2]["description"] == "changed"
        assert index.reloads == 1
        assert index.revision == await bucket.last_revision()

    async def test_a_large_gap_is_read_with_one_reload(self, bucket: KVBucket) -> None:
        index = DefinitionIndex(bucket, max_catch_up=5)
        await index.refresh()
        await put_all(bucket, [f"svc-{i}" for i in range(10)])
        assert len(parse(await index.page(100, None, BIG))[0]) == 10
        assert index.reloads == 2

    async def test_a_revision_gone_from_the_gap_forces_a_reload(self, bucket: KVBucket) -> None:
        index = DefinitionIndex(bucket)
        await put_all(bucket, ["aaa"])
        await index.refresh()
        for n in range(8):  # history is 5: the first revisions of "bbb" are dropped
            await bucket.put("bbb", definition("bbb", str(n)))
        page = json.loads(await index.page(10, None, BIG))
        assert [(i["serviceName"], i["description"]) for i in page["items"]] == [
            ("aaa", ""),
            ("bbb", "7"),
        ]
        assert index.reloads == 2

    async def test_a_bucket_deleted_and_made_again_is_read_anew(
        self, bucket: KVBucket, nats_client: Client
    ) -> None:
        await put_all(bucket, ["aaa", "bbb", "ccc"])
        index = DefinitionIndex(bucket)
        await index.refresh()
        js = nats_client.jetstream()
        await js.delete_key_value(bucket.name)
        again = await KVBucket.ensure(js, definitions_bucket_spec_of(bucket))
        await again.put("zzz", definition("zzz"))  # revision 1, below the index's 3
        assert parse(await index.page(10, None, BIG)) == (["zzz"], None)

    async def test_values_that_are_not_definitions_of_their_key_are_skipped(
        self, bucket: KVBucket
    ) -> None:
        await put_all(bucket, ["aaa", "ddd"])
        await bucket.put("bbb", b"not json")
        await bucket.put("ccc", definition("other"))
        with capture_logs() as logs:
            items, _ = parse(await DefinitionIndex(bucket).page(10, None, BIG))
        assert items == ["aaa", "ddd"]
        assert len([e for e in logs if e["event"].startswith("skipping")]) == 2

    async def test_concurrent_reads_agree(self, bucket: KVBucket) -> None:
        index = DefinitionIndex(bucket)
        await put_all(bucket, [f"svc-{i}" for i in range(20)])
        pages: list[bytes] = []

        async def read() -> None:
            pages.append(await index.page(100, None, BIG))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(read)
        assert len(set(pages)) == 1
        assert len(parse(pages[0])[0]) == 20
        assert index.reloads == 1


class TestAgainstTheBucket:
    """Property: after any interleaving of writes and reads, the index is the bucket."""

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["put", "delete", "read"]),
                st.sampled_from(["aaa", "bbb", "ccc", "ddd"]),
                st.text(max_size=5),
            ),
            max_size=25,
        ),
        st.integers(min_value=1, max_value=6),
    )
    def test_the_index_equals_the_live_entries(
        self, nats_url: str, ops: list[tuple[str, str, str]], max_catch_up: int
    ) -> None:
        async def scenario() -> None:
            client = await connect(ConnectionSettings(url=nats_url))
            try:
                namespace = f"p{uuid.uuid4().hex[:8]}"
                js = client.jetstream()
                bucket = await KVBucket.ensure(js, definitions_bucket_spec(Buckets(namespace)))
                try:
                    index = DefinitionIndex(bucket, max_catch_up=max_catch_up)
                    for op, name, description in ops:
                        if op == "put":
                            await bucket.put(name, definition(name, description))
                        elif op == "delete":
                            await bucket.delete(name)
                        else:
                            await index.refresh()
                    page = json.loads(await index.page(100, None, BIG))
                    live = {
                        e.key: json.loads(e.value)["description"] for e in await bucket.entries()
                    }
                    listed = {i["serviceName"]: i["description"] for i in page["items"]}
                    assert listed == live
                    assert list(listed) == sorted(live)
                finally:
                    await js.delete_key_value(bucket.name)
            finally:
                await client.close()

        anyio.run(scenario)
