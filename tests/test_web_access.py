"""What the monitor's credentials may write: NATS permission matching, as the server does it."""

from __future__ import annotations

import pytest
from pydantic_core import to_json

from aegis_actors._subjects import Subjects
from aegis_actors._web.access import ASSUMED, access_from_user_info, may_publish, resource_of


class TestMayPublish:
    """Deny wins; a non-empty allow list must match; no permissions means everything."""

    def test_no_permissions_allow_everything(self) -> None:
        assert may_publish(None, "aegis.mgmt.services.create")
        assert may_publish({}, "aegis.mgmt.services.create")

    def test_a_deny_wins_over_an_allow(self) -> None:
        permissions = {"publish": {"allow": [">"], "deny": ["aegis.mgmt.*.delete"]}}
        assert may_publish(permissions, "aegis.mgmt.services.update")
        assert not may_publish(permissions, "aegis.mgmt.services.delete")

    def test_an_allow_list_must_match(self) -> None:
        permissions = {"publish": {"allow": ["aegis.mgmt.*.get", "aegis.mgmt.*.list"]}}
        assert may_publish(permissions, "aegis.mgmt.apps.list")
        assert not may_publish(permissions, "aegis.mgmt.apps.create")


class TestUserInfo:
    """`$SYS.REQ.USER.INFO` answers tell, per resource, whether all three writes pass."""

    def reply(self, permissions: object) -> bytes:
        data: dict[str, object] = {"user": "u", "account": "$G"}
        if permissions is not None:
            data["permissions"] = permissions
        return to_json({"server": {}, "data": data})

    def test_a_viewer_may_write_nothing(self) -> None:
        deny = ["aegis.mgmt.*.create", "aegis.mgmt.*.update", "aegis.mgmt.*.delete"]
        access = access_from_user_info(
            self.reply({"publish": {"allow": [">"], "deny": deny}}), Subjects()
        )
        assert access.known
        assert dict(access.resources) == {"services": False, "apps": False, "configs": False}

    def test_one_denied_verb_makes_the_resource_read_only(self) -> None:
        access = access_from_user_info(
            self.reply({"publish": {"deny": ["aegis.mgmt.configs.delete"]}}), Subjects()
        )
        assert dict(access.resources) == {"services": True, "apps": True, "configs": False}

    def test_the_namespace_is_part_of_the_subjects(self) -> None:
        reply = self.reply({"publish": {"deny": ["aegis.mgmt.>"]}})
        assert dict(access_from_user_info(reply, Subjects("t1")).resources)["services"]
        assert not dict(access_from_user_info(reply, Subjects()).resources)["services"]

    def test_a_user_without_permissions_may_write_everything(self) -> None:
        access = access_from_user_info(self.reply(None), Subjects())
        assert access.known
        assert all(access.resources.values())

    @pytest.mark.parametrize("reply", [b"", b"not json", b"[]", b'{"error": {"code": 500}}'])
    def test_an_unusable_answer_assumes_writes_until_refused(self, reply: bytes) -> None:
        assert access_from_user_info(reply, Subjects()) == ASSUMED


class TestResources:
    """A refused subject names the resource it writes, whatever its case."""

    def test_write_subjects_name_their_resource(self) -> None:
        assert resource_of(Subjects(), "aegis.mgmt.apps.create") == "apps"
        assert resource_of(Subjects(), "AEGIS.MGMT.CONFIGS.DELETE") == "configs"
        assert resource_of(Subjects(), "aegis.mgmt.apps.get") is None
