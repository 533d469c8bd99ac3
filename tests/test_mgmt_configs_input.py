"""Bad input to `aegis.mgmt.apps.*` and `aegis.mgmt.configs.*` over real NATS.

Every bad request gets a clear error (400 for a body that is not a JSON
object, 422 naming the field otherwise) with the NATS micro error headers;
nothing is written; the actor goes on serving. The name rules are also
checked as properties, on the request models the server validates with.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from pydantic import TypeAdapter, ValidationError
from ulid import ULID

from aegis_actors import InstanceSettings, ServiceError
from aegis_actors._configuration.models import MAX_CONFIG_BYTES
from aegis_actors._configuration.requests import (
    CreateApplication,
    CreateConfiguration,
    GetApplication,
    GetConfiguration,
)
from aegis_actors._wire import ERROR_CODE_HEADER, from_validation_error
from tests.configs_support import (
    VERBS,
    error_of,
    management,
    value_of_size,
)

pytestmark = pytest.mark.nats


@pytest.fixture
def mgmt_settings(instance_settings: InstanceSettings) -> InstanceSettings:
    """No registration: these tests need no heartbeats, and start faster without."""
    return instance_settings.model_copy(update={"registration": False})


def body(base: dict[str, Any], **fields: Any) -> bytes:
    """`base` with `fields` changed (`...` leaves a field out), as JSON."""
    merged = {**base, **fields}
    return json.dumps({k: v for k, v in merged.items() if v is not ...}).encode()


APP = {"name": "billing", "comments": ""}
BAD_APP_NAMES = [
    "bill.ing", "billing.*", "billing.>", "*", ">", "bill ing", " billing", "Billing",
    "BILLING", "ab", "a" * 65, "1billing", "-billing", "bill_ing", "billing\n", "bïlling", "",
]  # fmt: skip
#: Application names that break the rule, for every request that takes one.
BAD_APP_CREATES: list[tuple[str, bytes, int, str | None]] = [
    ("not JSON", b"{name: billing}", 400, None),
    ("JSON but a list", b'[{"name": "billing"}]', 400, None),
    ("JSON but a string", b'"billing"', 400, None),
    ("JSON null", b"null", 400, None),
    ("empty body", b"", 400, None),
    ("unknown field", body(APP, owner="a"), 422, "owner"),
    ("client-made id", body(APP, id="01M83XVDVEFQP5XDGJGBVK8SV6"), 422, "id"),
    ("revision on create", body(APP, revision=1), 422, "revision"),
    ("name a number", body(APP, name=5), 422, "name"),
    ("name null", body(APP, name=None), 422, "name"),
    ("name missing", body(APP, name=...), 422, "name"),
    ("comments a list", body(APP, comments=[]), 422, "comments"),
    ("comments of 1001", body(APP, comments="c" * 1001), 422, "comments"),
    ("configurationIds", body(APP, configurationIds=[]), 422, "configurationIds"),
    ("configuration_ids", body(APP, configuration_ids=[]), 422, "configuration_ids"),
    *[
        (f"client {field}", body(APP, **{field: "2025-08-02T10:30:00Z"}), 422, field)
        for field in ["createdAt", "updatedAt"]
    ],
    *[(f"name {name!r}", body(APP, name=name), 422, "name") for name in BAD_APP_NAMES],
]
BAD_CONFIG_NAMES = [
    "d.b", "db.*", "db.>", "*", ">", "d b", "", "a" * 65, "_db", "-db", "db\n", "dé", "db/x",
]  # fmt: skip


def bad_config_creates(app_id: str) -> list[tuple[str, bytes, int, str | None]]:
    good = {"applicationId": app_id, "name": "db", "comments": "", "config": {"a": 1}}
    return [
        ("not JSON", b'{"applicationId": ', 400, None),
        ("empty body", b"", 400, None),
        ("JSON but a list", b"[]", 400, None),
        ("unknown field", body(good, value={}), 422, "value"),
        (
            "snake_case applicationId",
            body(good, applicationId=..., application_id=app_id),
            422,
            None,
        ),
        ("applicationId not a ULID", body(good, applicationId="billing"), 422, "applicationId"),
        ("applicationId lowercase", body(good, applicationId=app_id.lower()), 422, "applicationId"),
        ("applicationId a number", body(good, applicationId=1), 422, "applicationId"),
        ("config a list", body(good, config=[1]), 422, "config"),
        ("config a string", body(good, config='{"a": 1}'), 422, "config"),
        ("config a number", body(good, config=1), 422, "config"),
        ("config null", body(good, config=None), 422, "config"),
        ("config missing", body(good, config=...), 422, "config"),
        # NaN is not JSON at all (400); 1e400 is JSON, but no double holds it (422).
        ("config NaN", body(good).replace(b'{"a": 1}', b'{"a": NaN}'), 400, None),
        ("config 1e400", body(good).replace(b'{"a": 1}', b'{"a": [1e400]}'), 422, "config"),
        (
            "config over 64 KiB",
            body(good, config=value_of_size(MAX_CONFIG_BYTES + 100)),
            422,
            "config",
        ),
        ("comments of 1001", body(good, comments="c" * 1001), 422, "comments"),
        ("client createdAt", body(good, createdAt="2025-08-02T10:30:00Z"), 422, "createdAt"),
        ("client updatedAt", body(good, updatedAt="2025-08-02T10:30:00Z"), 422, "updatedAt"),
        ("client id", body(good, id="01M83XVDVEFQP5XDGJGBVK8SV6"), 422, "id"),
        *[(f"name {n!r}", body(good, name=n), 422, "name") for n in BAD_CONFIG_NAMES],
    ]


def nested(depth: int) -> Any:
    """A list in a list... `depth` deep."""
    value: Any = "a/b"
    for _ in range(depth):
        value = [value]
    return value


def bad_requests(app_id: str, config_id: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(resource, verb, body, field at fault) for the verbs other than create."""
    app_rev = {"id": app_id, "revision": 1}
    config_rev = {"id": config_id, "revision": 1}
    ulids = ["nope", app_id.lower(), app_id[:-1], app_id + "A", app_id + "\n", "8" + app_id[1:], 5]
    return [
        ("apps", "get", {}, "body"),
        ("apps", "get", {"id": app_id, "name": "billing"}, "body"),
        ("apps", "get", {"name": "Billing"}, "name"),
        ("apps", "get", {"name": "bill.*"}, "name"),
        ("apps", "list", {"limit": 0}, "limit"),
        ("apps", "list", {"limit": 1001}, "limit"),
        ("apps", "list", {"limit": "10"}, "limit"),
        ("apps", "list", {"cursor": "!!nonsense!!"}, "cursor"),
        ("apps", "list", {"cursor": "eyJhIjoxLCJiIjoyfQ=="}, "cursor"),  # {"a":1,"b":2}
        # Deep, huge or not the form given out: 422 before anything is read.
        *[
            (resource, "list", {"cursor": bad}, "cursor")
            for resource in ("apps", "configs")
            for bad in (nested(150), {"a": {"b": "c/d"}}, "a" * 10_000, "a/b/c", "/x", 7, True)
        ],
        ("apps", "update", {"id": app_id, "comments": "x"}, "revision"),
        ("apps", "update", app_rev, "body"),
        ("apps", "update", {**app_rev, "revision": "1", "comments": "x"}, "revision"),
        ("apps", "update", {**app_rev, "revision": 0, "comments": "x"}, "revision"),
        ("apps", "update", {**app_rev, "revision": True, "comments": "x"}, "revision"),
        ("apps", "update", {**app_rev, "name": None}, "name"),
        ("apps", "update", {**app_rev, "name": "Bad.Name"}, "name"),
        ("apps", "update", {**app_rev, "comments": "c" * 1001}, "comments"),
        ("apps", "update", {**app_rev, "configurationIds": []}, "configurationIds"),
        ("apps", "update", {**app_rev, "comments": "x", "createdAt": "2025-08-02T10:30:00Z"}, "createdAt"),
        ("apps", "delete", {}, "id"),
        ("apps", "delete", {"id": app_id, "revision": -1}, "revision"),
        ("configs", "get", {}, "body"),
        ("configs", "get", {"name": "db"}, "body"),
        ("configs", "get", {"applicationId": app_id}, "body"),
        ("configs", "get", {"id": config_id, "name": "db"}, "body"),
        ("configs", "get", {"id": config_id, "applicationId": app_id, "name": "db"}, "body"),
        ("configs", "get", {"applicationId": app_id, "name": "d.b"}, "name"),
        ("configs", "get", {"application_id": app_id, "name": "db"}, "application_id"),
        ("configs", "list", {"applicationId": "billing"}, "applicationId"),
        ("configs", "list", {"limit": 0}, "limit"),
        ("configs", "update", {"id": config_id, "config": {}}, "revision"),
        ("configs", "update", config_rev, "body"),
        ("configs", "update", {**config_rev, "config": None}, "config"),
        ("configs", "update", {**config_rev, "config": [1]}, "config"),
        ("configs", "update", {**config_rev, "name": "d b"}, "name"),
        ("configs", "update", {**config_rev, "applicationId": app_id, "comments": "x"}, "applicationId"),
        ("configs", "update", {**config_rev, "comments": "x", "updatedAt": "2025-08-02T10:30:00Z"}, "updatedAt"),
        ("configs", "delete", {"id": config_id, "revision": "1"}, "revision"),
        # JS and Go clients send a missing revision as null: never an unconditional delete.
        *[
            (resource, "delete", {"id": ident, "revision": bad}, "revision")
            for resource, ident in (("apps", app_id), ("configs", config_id))
            for bad in (None, True, False, 1.0, 1.5, "1", [1], {"n": 1}, 0, 2**64)
        ],
        *[
            (resource, "update", {"id": ident, "revision": bad, "comments": "x"}, "revision")
            for resource, ident in (("apps", app_id), ("configs", config_id))
            for bad in (None, True, 1.0, "1", [1])
        ],
        ("configs", "history", {}, "id"),
        ("configs", "history", {"id": config_id, "limit": 5}, "limit"),
        *[("apps", "get", {"id": bad}, "id") for bad in ulids],
        *[("apps", "delete", {"id": bad}, "id") for bad in ulids],
        *[("configs", "get", {"id": bad}, "id") for bad in ulids],
        *[("configs", "history", {"id": bad}, "id") for bad in ulids],
    ]  # fmt: skip


class TestBadInput:
    """Every bad request gets a clear error with the NATS error headers, nothing is
    written, and the actor goes on serving."""

    async def test_every_bad_application_create_is_refused(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            for what, data, status, field in BAD_APP_CREATES:
                reply, _ = await api.raw("apps", "create", data)
                assert reply["ok"] is False, what
                assert reply["status"] == status, (what, reply)
                assert reply["error"]["code"] == (
                    "BAD_REQUEST" if status == 400 else "VALIDATION_ERROR"
                )
                if field is not None:
                    assert reply["error"]["details"]["field"] == field, (what, reply)
                    assert "value" in reply["error"]["details"], what
            assert (await api.ok("apps", "list", {}))["data"]["items"] == []
            await api.still_serving()

    async def test_every_bad_configuration_create_is_refused(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            for what, data, status, field in bad_config_creates(app["id"]):
                reply, _ = await api.raw("configs", "create", data)
                assert reply["ok"] is False, what
                assert reply["status"] == status, (what, reply)
                if field is not None:
                    assert reply["error"]["details"]["field"] == field, (what, reply)
                assert len(reply["error"]["message"]) < 500, "no echo of huge input"
            assert (await api.ok("configs", "list", {}))["data"]["items"] == []
            assert (await api.ok("apps", "get", {"id": app["id"]}))["data"][
                "configurationIds"
            ] == []
            await api.still_serving()

    async def test_every_bad_get_list_update_delete_and_history_is_a_422(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.ok("apps", "create", {"name": "billing"})
            app_id = app["data"]["id"]
            config = await api.config(app_id, "db", {"v": 1})
            for resource, verb, params, field in bad_requests(app_id, config["data"]["id"]):
                what = (resource, verb, params)
                reply = await api.call(resource, verb, params)
                assert error_of(reply) == (422, "VALIDATION_ERROR"), (what, reply)
                assert reply["error"]["details"]["field"] == field, (what, reply)
                assert reply["error"]["message"].startswith(f"{field}: "), (what, reply)
            # Nothing moved: the records are at the revisions they were created at.
            assert await api.ok("apps", "get", {"id": app_id}) == {
                **app,
                "status": 200,
                "data": {**app["data"], "configurationIds": [config["data"]["id"]]},
            }
            assert await api.ok("configs", "get", {"id": config["data"]["id"]}) == {
                **config,
                "status": 200,
            }
            await api.still_serving()

    async def test_every_verb_refuses_a_body_that_is_not_a_json_object_with_a_400(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            for resource, verb in VERBS:
                for data in (b"", b"nope", b"[]", b"null", b"7", b"\xff\xfe"):
                    reply, headers = await api.raw(resource, verb, data)
                    assert error_of(reply) == (400, "BAD_REQUEST"), (resource, verb, data)
                    assert headers[ERROR_CODE_HEADER] == "400"
            too_big = b'{"name": "' + b"a" * (2 * MAX_CONFIG_BYTES) + b'"}'
            reply, _ = await api.raw("configs", "create", too_big)
            assert error_of(reply) == (400, "BAD_REQUEST")
            assert "byte limit" in reply["error"]["message"]
            await api.still_serving()


# -- name rules, as properties -------------------------------------------------------

APPLICATION_RULE = re.compile(r"[a-z][a-z0-9-]{2,63}")
CONFIGURATION_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ULID_RULE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
#: Letters that look like a rule's, and the characters that would break a KV key.
ALPHABET = st.sampled_from(
    [*"abcxyzABCXYZ0189-_", ".", "*", ">", " ", "\t", "\n", "/", "é", "ß", "٣", "İ", "\x00"]
)
NAMES = st.one_of(
    st.text(ALPHABET, max_size=70),
    st.from_regex(r"[a-z][a-z0-9-]{2,63}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
)


def verdict(model: type[Any], data: dict[str, Any]) -> str | None:
    """The field a request is refused for (as the server would answer), or None if taken."""
    try:
        TypeAdapter(model).validate_json(json.dumps(data))
    except ValidationError as exc:
        error = from_validation_error(exc)
        assert isinstance(error, ServiceError)
        assert error.status == 422
        return str(error.details["field"])
    return None


class TestNameRules:
    """A name is taken exactly when it matches its rule in full, in ASCII; anything
    taken is one KV key token (no `.`, `*`, `>`, whitespace)."""

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(name=NAMES)
    def test_application_names(self, name: str) -> None:
        taken = APPLICATION_RULE.fullmatch(name) is not None
        assert verdict(CreateApplication, {"name": name}) == (None if taken else "name")
        assert verdict(GetApplication, {"name": name}) == (None if taken else "name")
        if taken:
            assert not set(name) & set(".*> \t\n")

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(name=NAMES)
    def test_configuration_names(self, name: str) -> None:
        taken = CONFIGURATION_RULE.fullmatch(name) is not None
        app_id = "01M83XVDVEFQP5XDGJGBVK8SV6"
        create = {"applicationId": app_id, "name": name, "config": {}}
        assert verdict(CreateConfiguration, create) == (None if taken else "name")
        get = {"applicationId": app_id, "name": name}
        assert verdict(GetConfiguration, get) == (None if taken else "name")
        if taken:
            assert not set(name) & set(".*> \t\n")

    @settings(max_examples=300, deadline=None)
    @given(
        ident=st.one_of(
            st.text(st.sampled_from("0123789ABHIJKLOUZaz\n."), min_size=24, max_size=28),
            st.builds(lambda u: str(u), st.builds(ULID)),
        )
    )
    def test_ids(self, ident: str) -> None:
        taken = ULID_RULE.fullmatch(ident) is not None
        assert verdict(GetConfiguration, {"id": ident}) == (None if taken else "id")
