"""What the monitor's credentials may write: NATS permission matching, as the server does it."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import to_json

from aegis_actors._subjects import Subjects
from aegis_actors._web.access import (
    ASSUMED,
    Violations,
    access_from_user_info,
    denied_subject,
    may_publish,
    resource_of,
    subject_matches,
)

tokens = st.lists(st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True), min_size=1, max_size=5)


class TestSubjectMatching:
    """`*` is one token, `>` one or more trailing tokens; anything else matches itself."""

    @pytest.mark.parametrize(
        ("pattern", "subject", "matches"),
        [
            ("aegis.mgmt.*.create", "aegis.mgmt.services.create", True),
            ("aegis.mgmt.*.create", "aegis.mgmt.services.get", False),
            ("aegis.mgmt.*.create", "aegis.mgmt.create", False),
            ("aegis.mgmt.>", "aegis.mgmt.apps.delete", True),
            ("aegis.mgmt.>", "aegis.mgmt", False),
            (">", "anything.at.all", True),
            ("aegis.*", "aegis.mgmt.apps", False),
            ("ns.aegis.mgmt.*.update", "aegis.mgmt.services.update", False),
        ],
    )
    def test_known_cases(self, pattern: str, subject: str, matches: bool) -> None:
        assert subject_matches(pattern, subject) is matches

    @given(tokens)
    def test_a_literal_pattern_matches_only_itself(self, parts: list[str]) -> None:
        subject = ".".join(parts)
        assert subject_matches(subject, subject)
        assert subject_matches(">", subject)
        assert not subject_matches(subject + ".x", subject)
        assert subject_matches(".".join(["*"] * len(parts)), subject)


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


class TestViolations:
    """A permissions violation wakes whoever waits on that subject, and only them."""

    def test_the_subject_is_read_from_the_servers_message(self) -> None:
        error = Exception('nats: permissions violation for publish to "aegis.mgmt.apps.create"')
        assert denied_subject(error) == "aegis.mgmt.apps.create"
        # nats-py lowercases the message: subjects are compared in lowercase.
        upper = Exception('nats: permissions violation for publish to "$SYS.REQ.USER.INFO"')
        assert denied_subject(upper) == "$sys.req.user.info"
        assert denied_subject(Exception("nats: stale connection")) is None
        assert resource_of(Subjects(), "aegis.mgmt.apps.create") == "apps"
        assert resource_of(Subjects(), "aegis.mgmt.apps.get") is None

    async def test_waiters_of_the_subject_are_woken(self) -> None:
        violations = Violations()
        with (
            violations.watching("aegis.mgmt.apps.create") as create,
            violations.watching("aegis.mgmt.apps.update") as update,
        ):
            found = violations.report(
                Exception('nats: permissions violation for publish to "aegis.mgmt.apps.create"')
            )
            assert found == "aegis.mgmt.apps.create"
            with anyio.fail_after(1):
                await create.wait()
            assert not update.is_set()
