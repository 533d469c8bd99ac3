"""Arbitrary bytes and JSON shapes to every `aegis.mgmt.*` verb and to an RPC method.

Every request gets the JSON envelope (never silence, never a 500 for
input), a refused request writes nothing (the buckets' revisions stay as
they were), and the instances keep serving. One fleet for the whole module:
the management service, the showcase's order service (with the pricing and
risk services it calls) and a probe that answers with the trace id it saw.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import nats
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    HeartbeatSettings,
    InstanceSettings,
    KVBucket,
    ManagementService,
    ServiceActor,
    Subjects,
    current_request,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets
from aegis_actors._mgmt.actor import VERBS
from aegis_actors._text import TRACE_ID
from aegis_actors._wire import ERROR_CODE_HEADER, TRACE_ID_HEADER
from services.trading.order import OrderService
from services.trading.pricing import PricingService
from services.trading.risk import RiskService

pytestmark = [pytest.mark.nats, pytest.mark.asyncio(loop_scope="module")]

#: What bad input may get: never 500, never 503 (the store is up), never silence.
INPUT_ERRORS: Final = frozenset({400, 404, 409, 422})
FUZZ: Final = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Stale on purpose: a body that passes validation is a 409, and the seeds stay.
STALE: Final = 10**9
HOSTILE: Final = ["\x00", "\x1b", "\r", "\n", "\t", "\x7f", "\x9b", "\u202e", "\u200b", "\ufeff"]


class Probe(ServiceActor):
    """Answers with the trace id the request was served under."""

    service_name = "probe"
    version = "1.0.0"

    @rpc
    async def trace(self) -> str:
        request = current_request()
        assert request is not None
        return request.trace_id


@dataclass
class Fleet:
    nc: NatsClient
    subjects: Subjects
    buckets: list[KVBucket]
    seeds: dict[str, str]

    async def revisions(self) -> list[int]:
        return [await bucket.last_revision() for bucket in self.buckets]

    async def send(
        self,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None = None,
        allowed: frozenset[int] = INPUT_ERRORS,
    ) -> dict[str, Any]:
        """The reply to one request: a JSON envelope whose status matches its headers."""
        msg = await self.nc.request(subject, data, timeout=5, headers=headers)
        envelope = json.loads(msg.data)
        assert isinstance(envelope, dict), envelope
        assert isinstance(envelope["ok"], bool), envelope
        status = envelope["status"]
        if envelope["ok"]:
            assert 200 <= status < 300, envelope
        else:
            assert status in allowed, (subject, data[:200], envelope)
            assert (msg.headers or {}).get(ERROR_CODE_HEADER) == str(status)
            assert {"code", "message"} <= envelope["error"].keys()
        return envelope

    async def still_serving(self) -> None:
        listed = await self.send(self.subjects.mgmt("services", "list"), b"{}")
        assert [i["serviceName"] for i in listed["data"]["items"]] == ["orders"]
        echo = await self.send(self.subjects.rpc("order-service", "echo"), b'{"message": "hi"}')
        assert echo["data"] == {"message": "hi"}


@pytest.fixture(autouse=True)
def no_leaked_instances() -> None:
    """The module's fleet outlives each test on purpose; the `fleet` fixture stops it."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(nats_url: str) -> AsyncIterator[Fleet]:
    namespace = f"fz{uuid.uuid4().hex[:8]}"
    instance = InstanceSettings(
        nats=ConnectionSettings(url=nats_url),
        namespace=namespace,
        heartbeat=HeartbeatSettings(ttl=2, interval=0.5),
    )
    system = ActorSystem()
    await system.start()
    nc = await nats.connect(nats_url)
    try:
        await start_instance(system, ManagementService, instance)
        await start_instance(system, Probe, instance)
        await start_instance(system, PricingService, instance.model_copy(update={"settings": {"publish_every": 0}}))  # fmt: skip
        await start_instance(system, RiskService, instance)
        await start_instance(system, OrderService, instance)
        async with Client(url=nats_url, namespace=namespace) as client:
            for service in ("pricing-service", "risk-service", "order-service"):
                await client.wait_for_instances(service, 1)
        subjects = Subjects(namespace)
        fleet = Fleet(nc, subjects, [], {})
        await fleet.send(
            subjects.mgmt("services", "create"),
            b'{"serviceName": "orders", "owner": "team", "version": "1.0.0"}',
        )
        app = await fleet.send(subjects.mgmt("apps", "create"), b'{"name": "billing"}')
        body = {"applicationId": app["data"]["id"], "name": "db", "config": {"pool": 5}}
        config = await fleet.send(subjects.mgmt("configs", "create"), json.dumps(body).encode())
        fleet.seeds = {"app": app["data"]["id"], "config": config["data"]["id"]}
        js = nc.jetstream()
        buckets = Buckets(namespace)
        fleet.buckets = [
            KVBucket(js, buckets.definitions),
            KVBucket(js, buckets.configuration),
            KVBucket(js, f"{namespace}-orders"),
        ]
        yield fleet
    finally:
        await nc.close()
        await system.close()


def templates(seeds: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """A well-formed body for every verb (writes at a stale revision: they cannot succeed)."""
    app, config = seeds["app"], seeds["config"]
    return {
        ("services", "create"): {"serviceName": "orders", "owner": "o", "version": "1.0.0"},
        ("services", "get"): {"serviceName": "orders"},
        ("services", "list"): {"limit": 2, "cursor": "orders"},
        ("services", "update"): {"serviceName": "orders", "revision": STALE, "owner": "x"},
        ("services", "delete"): {"serviceName": "orders", "revision": STALE},
        ("instances", "list"): {"serviceName": "probe"},
        ("instances", "get"): {"instanceId": "probe-0badc0de"},
        ("apps", "create"): {"name": "billing", "comments": ""},
        ("apps", "get"): {"id": app},
        ("apps", "list"): {"limit": 5, "cursor": f"billing/{app}"},
        ("apps", "update"): {"id": app, "revision": STALE, "comments": "x"},
        ("apps", "delete"): {"id": app, "revision": STALE},
        ("configs", "create"): {"applicationId": app, "name": "db", "config": {}},
        ("configs", "get"): {"applicationId": app, "name": "db"},
        ("configs", "list"): {"applicationId": app, "limit": 5},
        ("configs", "update"): {"id": config, "revision": STALE, "config": {"a": 1}},
        ("configs", "delete"): {"id": config, "revision": STALE},
        ("configs", "history"): {"id": config},
        ("rpc", "create_order"): {"symbol": "ACME", "side": "buy", "quantity": 5},
        ("rpc", "get_order"): {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        ("rpc", "list_orders"): {"symbol": "ACME", "limit": 5},
    }


TARGETS: Final = sorted(templates({"app": "", "config": ""}))
assert {(r, v) for r, verbs in VERBS.items() for v in verbs} <= set(TARGETS)
TEXT = st.one_of(
    st.text(st.one_of(st.characters(), st.sampled_from(HOSTILE)), max_size=24),
    st.sampled_from(["orders", "billing", "db", "ACME", "buy", "", "a" * 300, "x/y", "1.0.0"]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
FIELD_NAMES = st.sampled_from(
    [
        *sorted({key for body in templates({"app": "", "config": ""}).values() for key in body}),
        *("createdAt", "configurationIds", "service_name", "extra"),
    ]
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(FIELD_NAMES, TEXT), inner, max_size=4)
    ),
    max_leaves=12,
)


def subject_of(fleet: Fleet, target: tuple[str, str]) -> str:
    resource, verb = target
    if resource == "rpc":
        return fleet.subjects.rpc("order-service", verb)
    return fleet.subjects.mgmt(resource, verb)


async def refused_writes_nothing(fleet: Fleet, subject: str, data: bytes) -> dict[str, Any]:
    before = await fleet.revisions()
    reply = await fleet.send(subject, data)
    if not reply["ok"]:
        assert await fleet.revisions() == before, (subject, data[:200], reply)
    return reply


async def reseed_if_written(fleet: Fleet, target: tuple[str, str], reply: dict[str, Any]) -> None:
    """A body that happened to be valid may have changed the seeds: put them back."""
    if reply["ok"] and target[1] in ("update", "delete", "create"):
        listed = await fleet.send(fleet.subjects.mgmt("services", "list"), b"{}")
        for item in listed["data"]["items"]:
            if item["serviceName"] != "orders":
                await fleet.send(
                    fleet.subjects.mgmt("services", "delete"),
                    json.dumps({"serviceName": item["serviceName"]}).encode(),
                )
        orders = await fleet.send(fleet.subjects.mgmt("services", "get"), b'{"serviceName": "orders"}')  # fmt: skip
        assert orders["ok"], "a fuzzed request deleted the seed definition"


class TestArbitraryBodies:
    """Any bytes, any JSON: an envelope, an input error at worst, and nothing written."""

    @FUZZ
    @given(target=st.sampled_from(TARGETS), data=st.binary(max_size=300))
    async def test_arbitrary_bytes(
        self, fleet: Fleet, target: tuple[str, str], data: bytes
    ) -> None:
        reply = await refused_writes_nothing(fleet, subject_of(fleet, target), data)
        await reseed_if_written(fleet, target, reply)

    @FUZZ
    @given(target=st.sampled_from(TARGETS), value=JSON, ascii_only=st.booleans())
    async def test_arbitrary_json(
        self, fleet: Fleet, target: tuple[str, str], value: Any, ascii_only: bool
    ) -> None:
        # Lone surrogates pass as invalid UTF-8: bytes a client may send too.
        data = json.dumps(value, ensure_ascii=ascii_only).encode(errors="surrogatepass")
        reply = await refused_writes_nothing(fleet, subject_of(fleet, target), data)
        await reseed_if_written(fleet, target, reply)

    @FUZZ
    @given(target=st.sampled_from(TARGETS), field=FIELD_NAMES, value=JSON, drop=st.booleans())
    async def test_one_field_of_a_well_formed_body_changed(
        self, fleet: Fleet, target: tuple[str, str], field: str, value: Any, drop: bool
    ) -> None:
        body = dict(templates(fleet.seeds)[target])
        if drop:
            body.pop(field, None)
        else:
            body[field] = value
        reply = await refused_writes_nothing(
            fleet, subject_of(fleet, target), json.dumps(body).encode()
        )
        await reseed_if_written(fleet, target, reply)

    async def test_the_instances_keep_serving(self, fleet: Fleet) -> None:
        await fleet.still_serving()


class TestSubjectsAndHeaders:
    """Unknown management subjects get the 404 envelope; any header value is served safely."""

    @FUZZ
    @given(tokens=st.lists(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), min_size=1, max_size=3))
    async def test_any_management_subject(self, fleet: Fleet, tokens: list[str]) -> None:
        subject = ".".join([fleet.subjects.mgmt_root(), *tokens])
        reply = await fleet.send(subject, b"{}")
        known = len(tokens) == 2 and tokens[1] in VERBS.get(tokens[0], ())
        assert reply["ok"] or known or reply["status"] == 404, reply

    @FUZZ
    @given(
        trace=st.text(
            st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=300
        ),
        deadline=st.one_of(st.none(), st.text(max_size=20).filter(lambda t: "\r" not in t and "\n" not in t)),
    )  # fmt: skip
    async def test_any_trace_id_and_deadline_header(
        self, fleet: Fleet, trace: str, deadline: str | None
    ) -> None:
        headers = {TRACE_ID_HEADER: trace}
        if deadline is not None:
            headers["Aegis-Deadline"] = deadline
        # A deadline already past is a 504 without running: the answer to that header.
        reply = await fleet.send(
            fleet.subjects.rpc("probe", "trace"), b"", headers, INPUT_ERRORS | {504}
        )
        if reply["ok"]:
            seen = reply["data"]
            assert TRACE_ID.fullmatch(seen), "echoed trace ids are short and printable"
            assert seen == trace.strip() or not TRACE_ID.fullmatch(trace.strip())

    async def test_a_huge_trace_id_with_escapes_is_replaced(self, fleet: Fleet) -> None:
        hostile = "\x1b[2J" + "x" * 20_000
        reply = await fleet.send(
            fleet.subjects.rpc("probe", "trace"), b"", {TRACE_ID_HEADER: hostile}
        )
        assert len(reply["data"]) == 32  # a fresh W3C trace id
        await fleet.still_serving()
