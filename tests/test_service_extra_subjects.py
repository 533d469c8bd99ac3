"""ServiceActor.extra_subjects and Reply: methods on subjects of the service's choosing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import nats.micro.service as micro
import pytest
from nats.aio.client import Client

from aegis_actors import (
    ActorStartError,
    ActorSystem,
    InstanceSettings,
    Reply,
    ServiceActor,
    Subjects,
    rpc,
    start_instance,
)
from aegis_actors._wire import ERROR_CODE_HEADER
from tests.probes import Journal

pytestmark = pytest.mark.nats


class Shelf(ServiceActor):
    """Keeps books; answers on `aegis.mgmt.books.*` too."""

    service_name = "shelf"

    @rpc
    async def add_book(self, params: dict[str, Any]) -> Reply:
        """Add a book."""
        self.settings["journal"].record("add", self.instance_id)
        return Reply(params, status=201, revision=7)

    @rpc
    async def count(self) -> Reply:
        return Reply(data_json=b'{"books":3}')

    def extra_subjects(self) -> Mapping[str, str]:
        subjects = self.actor_instance.subjects
        return {subjects.mgmt("books", "add"): "add_book", subjects.mgmt("books", "count"): "count"}


class Misrouted(Shelf):
    def extra_subjects(self) -> Mapping[str, str]:
        return {self.actor_instance.subjects.mgmt("books", "drop"): "drop_book"}


class Wildcard(Shelf):
    def extra_subjects(self) -> Mapping[str, str]:
        return {self.actor_instance.subjects.mgmt("books", "*"): "count"}


class Rooted(Shelf):
    """Answers everything under `shelf.`; keeps one extra subject outside it."""

    def extra_subjects(self) -> Mapping[str, str]:
        subjects = self.actor_instance.subjects
        return {
            subjects.own("shelf.books.add"): "add_book",
            subjects.mgmt("books", "count"): "count",
        }

    def extra_subjects_root(self) -> str:
        return self.actor_instance.subjects.own("shelf")


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def settings(instance_settings: InstanceSettings, journal: Journal) -> InstanceSettings:
    return instance_settings.model_copy(
        update={"settings": {"journal": journal}, "registration": False}
    )


async def ask(client: Client, subject: str, body: bytes = b"{}") -> tuple[Any, dict[str, str]]:
    reply = await client.request(subject, body, timeout=5)
    return json.loads(reply.data), dict(reply.headers or {})


class TestExtraSubjects:
    """A method mapped to an extra subject is served there, in the service's queue group."""

    async def test_the_method_answers_on_its_extra_subject_and_its_rpc_subject(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        subjects = Subjects(namespace)
        async with ActorSystem() as system:
            await start_instance(system, Shelf, settings)
            for subject in (subjects.mgmt("books", "add"), subjects.rpc("shelf", "add_book")):
                reply, headers = await ask(nats_client, subject, b'{"title": "Dune"}')
                assert reply == {
                    "ok": True,
                    "status": 201,
                    "data": {"title": "Dune"},
                    "revision": 7,
                }
                assert ERROR_CODE_HEADER not in headers

    async def test_each_request_reaches_one_instance_of_several(
        self,
        settings: InstanceSettings,
        nats_client: Client,
        namespace: str,
        journal: Journal,
    ) -> None:
        subject = Subjects(namespace).mgmt("books", "add")
        async with ActorSystem() as system:
            first = await start_instance(system, Shelf, settings)
            second = await start_instance(system, Shelf, settings)
            for _ in range(40):
                await ask(nats_client, subject)
        served = [event[1] for event in journal.of("add")]
        assert len(served) == 40, "a queue group: one instance per request, not all of them"
        assert set(served) <= {first.instance_id, second.instance_id}

    async def test_info_lists_the_extra_subject_and_stats_count_it_apart(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        subjects = Subjects(namespace)
        async with ActorSystem() as system:
            running = await start_instance(system, Shelf, settings)
            await ask(nats_client, subjects.mgmt("books", "add"))
            await ask(nats_client, subjects.mgmt("books", "add"))
            await ask(nats_client, subjects.rpc("shelf", "add_book"))
            iid = running.instance_id
            info_reply = await nats_client.request(f"$SRV.INFO.shelf.{iid}", b"", timeout=5)
            stats_reply = await nats_client.request(f"$SRV.STATS.shelf.{iid}", b"", timeout=5)
        info = micro.ServiceInfo.from_dict(json.loads(info_reply.data))
        by_subject = {e.subject: e for e in info.endpoints}
        extra = by_subject[subjects.mgmt("books", "add")]
        assert (extra.name, extra.queue_group) == ("add_book", "shelf")
        assert extra.metadata == {"description": "Add a book."}
        assert subjects.rpc("shelf", "add_book") in by_subject
        stats = micro.ServiceStats.from_dict(json.loads(stats_reply.data))
        counts = {e.subject: e.num_requests for e in stats.endpoints}
        assert counts[subjects.mgmt("books", "add")] == 2
        assert counts[subjects.rpc("shelf", "add_book")] == 1

    async def test_a_reply_with_data_already_in_json_is_sent_as_is(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        async with ActorSystem() as system:
            await start_instance(system, Shelf, settings)
            reply = await nats_client.request(Subjects(namespace).mgmt("books", "count"), b"{}")
        assert reply.data == b'{"ok":true,"status":200,"data":{"books":3}}'

    @pytest.mark.parametrize(
        ("cls", "message"),
        [(Misrouted, "not one of its RPC methods"), (Wildcard, "without wildcards")],
    )
    async def test_a_bad_mapping_fails_the_start_clearly(
        self, settings: InstanceSettings, cls: type[ServiceActor], message: str
    ) -> None:
        async with ActorSystem() as system:
            with pytest.raises(ActorStartError) as info:
                await start_instance(system, cls, settings.model_copy(update={"max_restarts": 0}))
        assert message in str(info.value)


class TestReply:
    """A Reply carries a 2xx status and a revision into the reply envelope."""

    def test_encodes_status_data_and_revision(self) -> None:
        assert Reply({"a": 1}, status=201, revision=3).encode() == (
            b'{"ok":true,"status":201,"data":{"a":1},"revision":3}'
        )

    def test_no_content_has_null_data(self) -> None:
        assert Reply(status=204).encode() == b'{"ok":true,"status":204,"data":null}'

    @pytest.mark.parametrize("status", [199, 300, 404, 500])
    def test_a_status_outside_2xx_is_refused(self, status: int) -> None:
        with pytest.raises(ValueError, match="2xx"):
            Reply(status=status)


class TestExtraSubjectsRoot:
    """Under `extra_subjects_root()`, a subject that maps to no method is a 404, not silence."""

    async def test_known_subjects_answer_and_others_under_the_root_are_404(
        self, settings: InstanceSettings, nats_client: Client, namespace: str
    ) -> None:
        subjects = Subjects(namespace)
        async with ActorSystem() as system:
            await start_instance(system, Rooted, settings)
            added, _ = await ask(nats_client, subjects.own("shelf.books.add"), b'{"t": 1}')
            outside, _ = await ask(nats_client, subjects.mgmt("books", "count"))
            via_rpc, _ = await ask(nats_client, subjects.rpc("shelf", "count"))
            unknown, headers = await ask(nats_client, subjects.own("shelf.books.burn"))
        assert added["status"] == 201
        assert outside["data"] == via_rpc["data"] == {"books": 3}
        assert unknown["status"] == 404
        assert unknown["error"]["code"] == "NOT_FOUND"
        assert unknown["error"]["details"] == {"method": "books.burn", "methods": ["books.add"]}
        assert headers[ERROR_CODE_HEADER] == "404"
