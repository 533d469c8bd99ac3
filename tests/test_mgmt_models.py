"""The rules of service definitions, as properties over generated input."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from aegis_actors import ServiceDefinition, ServiceError
from aegis_actors._mgmt.models import (
    CreateService,
    DeleteService,
    GetInstance,
    ListServices,
    UpdateService,
)
from aegis_actors._subjects import service_of
from aegis_actors._text import REFUSED_CATEGORIES
from aegis_actors._wire import from_validation_error

NAME = re.compile(r"[a-z][a-z0-9-]{2,63}")
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


def create(**fields: Any) -> dict[str, Any]:
    return {"serviceName": "orders", "owner": "team-a", "version": "1.0.0", **fields}


def error(model: type[BaseModel], body: dict[str, Any] | bytes) -> ServiceError:
    """The reply the API gives for `body`."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(raw)
    return from_validation_error(info.value)


def assert_rejected(model: type[BaseModel], body: dict[str, Any], field: str) -> None:
    problem = error(model, body)
    assert (problem.status, problem.code) == (422, "VALIDATION_ERROR")
    assert problem.details["field"] == field


#: Every character `str.strip()` removes: drawn from directly, because a
#: filter over broader categories threw away too many draws (a flaky health check).
WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
#: Characters a text field takes (no controls or invisible characters: see tests/test_text.py).
VISIBLE = st.characters(blacklist_categories=tuple(REFUSED_CATEGORIES))


class TestServiceName:
    """`^[a-z][a-z0-9-]{2,63}$`, matched whole and in ASCII."""

    @given(st.from_regex(NAME, fullmatch=True))
    def test_every_name_matching_the_pattern_is_accepted(self, name: str) -> None:
        assert CreateService.model_validate(create(serviceName=name)).service_name == name

    @given(st.text(max_size=70).filter(lambda s: not NAME.fullmatch(s)))
    @example("orders.eu")
    @example("orders*")
    @example("orders>")
    @example("my orders")
    @example("Orders")
    @example("ab")
    @example("a" * 65)
    @example("orders\n")
    @example("1orders")
    @example("")
    def test_every_other_string_is_a_422_naming_the_field(self, name: str) -> None:
        assert_rejected(CreateService, create(serviceName=name), "serviceName")

    @pytest.mark.parametrize("value", [None, 42, ["orders"], {"n": 1}, True])
    def test_a_name_that_is_not_a_string_is_a_422(self, value: Any) -> None:
        assert_rejected(CreateService, create(serviceName=value), "serviceName")


class TestOwnerAndDescription:
    """owner: 1-100 characters; description: 0-500 characters (code points, not bytes)."""

    @given(st.text(VISIBLE, min_size=1, max_size=100).filter(str.strip))
    @example(" team-a ")
    def test_an_owner_of_1_to_100_characters_is_accepted_as_sent(self, owner: str) -> None:
        assert CreateService.model_validate(create(owner=owner)).owner == owner

    @given(st.text(alphabet=st.sampled_from(WHITESPACE), min_size=1, max_size=100))
    @example("   ")
    @example("\t\n")
    @example("\u00a0\u3000")
    def test_a_blank_owner_is_refused_at_create_and_update(self, owner: str) -> None:
        assert_rejected(CreateService, create(owner=owner), "owner")
        update = {"serviceName": "orders", "revision": 1, "owner": owner}
        problem = error(UpdateService, update)
        assert (problem.status, problem.code) == (422, "VALIDATION_ERROR")
        assert problem.details["field"] == "owner"
        assert "blank" in problem.message

    def test_a_blank_owner_already_stored_still_reads(self) -> None:
        """Stored data is read as written: only requests are held to the new rule."""
        stored = {**create(owner="   "), "createdAt": "2025-01-01T00:00:00Z"}
        stored["updatedAt"] = stored["createdAt"]
        assert ServiceDefinition.model_validate(stored).owner == "   "

    @given(st.one_of(st.just(""), st.text(min_size=101, max_size=300)))
    @example("x" * 101)
    def test_an_empty_owner_or_one_over_100_is_refused(self, owner: str) -> None:
        assert_rejected(CreateService, create(owner=owner), "owner")

    @given(st.text(st.one_of(VISIBLE, st.sampled_from("\n\t")), max_size=500))
    @example("🦀" * 500)
    def test_a_description_up_to_500_characters_is_accepted(self, description: str) -> None:
        parsed = CreateService.model_validate(create(description=description))
        assert parsed.description == description

    @given(st.text(min_size=501, max_size=700))
    def test_a_description_over_500_is_refused(self, description: str) -> None:
        assert_rejected(CreateService, create(description=description), "description")

    def test_the_description_may_be_left_out(self) -> None:
        assert CreateService.model_validate(create()).description == ""


class TestVersion:
    """MAJOR.MINOR.PATCH with ASCII digits, nothing before or after."""

    @given(st.from_regex(VERSION, fullmatch=True))
    def test_every_semver_core_is_accepted(self, version: str) -> None:
        assert CreateService.model_validate(create(version=version)).version == version

    @given(st.text(max_size=20).filter(lambda s: not VERSION.fullmatch(s)))
    @example("1.0")
    @example("v1.0.0")
    @example("1.0.0-beta")
    @example("1.0.0\n")
    @example("\u0661.\u0662.\u0663")  # Arabic-Indic digits: \d would take them
    def test_anything_else_is_refused(self, version: str) -> None:
        assert_rejected(CreateService, create(version=version), "version")

    def test_a_number_is_not_a_version(self) -> None:
        assert_rejected(CreateService, create(version=1.0), "version")


class TestServerSetFields:
    """createdAt and updatedAt belong to the server: a request carrying them is refused."""

    @pytest.mark.parametrize("field", ["createdAt", "updatedAt"])
    @pytest.mark.parametrize("value", ["2025-08-02T10:30:00Z", None, 0])
    def test_create_with_a_timestamp_is_a_422_saying_why(self, field: str, value: Any) -> None:
        problem = error(CreateService, create(**{field: value}))
        assert problem.details["field"] == field
        assert "set by the server" in problem.message

    def test_update_with_a_timestamp_is_refused_too(self) -> None:
        body = {"serviceName": "orders", "revision": 1, "owner": "x", "updatedAt": "2025-01-01Z"}
        assert_rejected(UpdateService, body, "updatedAt")

    def test_a_stored_definition_has_utc_timestamps_with_a_z(self) -> None:
        definition = ServiceDefinition.model_validate(
            {**create(), "createdAt": "2025-08-02T12:30:00+02:00", "updatedAt": "2025-08-02T10:30Z"}
        )
        dumped = json.loads(definition.model_dump_json())
        assert dumped["createdAt"] == "2025-08-02T10:30:00.000Z"
        assert dumped["updatedAt"] == "2025-08-02T10:30:00.000Z"


class TestUnknownFieldsAndShapes:
    """Unknown fields are 422; a body that is not a JSON object is 400."""

    @pytest.mark.parametrize("field", ["revision", "owners", "extra", "Version", "created_at"])
    def test_an_unknown_field_is_a_422_naming_it(self, field: str) -> None:
        assert_rejected(CreateService, create(**{field: "x"}), field)

    def test_snake_case_names_are_unknown_fields_on_the_wire(self) -> None:
        body = {"service_name": "orders", "owner": "team-a", "version": "1.0.0"}
        problem = error(CreateService, body)
        assert problem.status == 422
        assert {e["field"] for e in problem.details["errors"]} == {"serviceName", "service_name"}

    @pytest.mark.parametrize("body", [b"", b"nope", b"{", b"[]", b'"orders"', b"42", b"null"])
    def test_not_a_json_object_is_a_400(self, body: bytes) -> None:
        problem = error(CreateService, body)
        assert (problem.status, problem.code) == (400, "BAD_REQUEST")


class TestUpdateRules:
    """An update names its revision and changes at least one field, never to null."""

    def test_only_the_fields_sent_are_changes(self) -> None:
        update = UpdateService.model_validate(
            {"serviceName": "orders", "revision": 3, "description": ""}
        )
        assert update.changes() == {"description": ""}

    def test_without_a_revision_it_is_refused(self) -> None:
        assert_rejected(UpdateService, {"serviceName": "orders", "owner": "x"}, "revision")

    @pytest.mark.parametrize("revision", [0, -1, "3", 3.0, True, None])
    def test_a_revision_must_be_a_positive_integer(self, revision: Any) -> None:
        body = {"serviceName": "orders", "revision": revision, "owner": "x"}
        assert_rejected(UpdateService, body, "revision")

    def test_nothing_to_change_is_refused(self) -> None:
        problem = error(UpdateService, {"serviceName": "orders", "revision": 1})
        assert problem.status == 422
        assert "at least one of owner, description, version" in problem.message

    @pytest.mark.parametrize("field", ["owner", "description", "version"])
    def test_null_is_not_a_change(self, field: str) -> None:
        body = {"serviceName": "orders", "revision": 1, field: None}
        assert_rejected(UpdateService, body, field)

    def test_the_name_cannot_be_changed(self) -> None:
        body = {"serviceName": "orders", "revision": 1, "newServiceName": "billing"}
        assert_rejected(UpdateService, body, "newServiceName")

    def test_a_delete_revision_is_optional_but_positive(self) -> None:
        assert DeleteService.model_validate({"serviceName": "orders"}).revision is None
        assert_rejected(DeleteService, {"serviceName": "orders", "revision": 0}, "revision")


class TestListAndInstanceIds:
    """list: limit 1-1000 (default 100), cursor a name; instance ids are `{name}-{8 hex}`."""

    @given(st.integers(min_value=1, max_value=1000))
    def test_a_limit_from_1_to_1000_is_accepted(self, limit: int) -> None:
        assert ListServices.model_validate({"limit": limit}).limit == limit

    @pytest.mark.parametrize("limit", [0, -5, 1001, "10", 2.5])
    def test_other_limits_are_refused(self, limit: Any) -> None:
        assert_rejected(ListServices, {"limit": limit}, "limit")

    def test_defaults(self) -> None:
        assert ListServices.model_validate({}) == ListServices(limit=100, cursor=None)

    def test_a_cursor_must_be_a_name(self) -> None:
        assert_rejected(ListServices, {"cursor": "*"}, "cursor")

    @given(st.from_regex(NAME, fullmatch=True), st.from_regex(r"[0-9a-f]{8}", fullmatch=True))
    def test_an_instance_id_names_its_service(self, name: str, suffix: str) -> None:
        instance_id = f"{name}-{suffix}"
        assert GetInstance.model_validate({"instanceId": instance_id}).instance_id == instance_id
        assert service_of(instance_id) == name

    @pytest.mark.parametrize(
        "instance_id",
        ["orders", "orders-1234567", "orders-1234567G", "Orders-12345678", "x-12345678"],
    )
    def test_a_malformed_instance_id_is_refused(self, instance_id: str) -> None:
        assert_rejected(GetInstance, {"instanceId": instance_id}, "instanceId")


def test_a_key_sent_twice_keeps_its_last_value() -> None:
    """Documented, not refused (docs/reference/management-api.md): checking for duplicates would cost every request."""
    body = b'{"serviceName":"aaa","serviceName":"orders","owner":"x","version":"1.0.0"}'
    assert CreateService.model_validate_json(body).service_name == "orders"
