"""Names and subjects are checked whole: a trailing newline never slips through."""

from __future__ import annotations

import pytest

from aegis_actors._subjects import (
    check_method_name,
    check_namespace,
    check_service_name,
    check_subject,
)


class TestNames:
    """Service names, method names and namespaces match their pattern from end to end."""

    @pytest.mark.parametrize("check", [check_service_name, check_method_name, check_namespace])
    def test_a_trailing_newline_is_refused(self, check: object) -> None:
        assert callable(check)
        with pytest.raises(ValueError, match="must"):
            check("orders\n")

    def test_valid_names_pass_unchanged(self) -> None:
        assert check_service_name("orders-2") == "orders-2"
        assert check_method_name("get_order") == "get_order"
        assert check_namespace("t1") == "t1"


class TestCheckSubject:
    """A literal subject is dot-separated tokens, without wildcards or whitespace."""

    @pytest.mark.parametrize("subject", ["aegis.mgmt.services.get", "a", "ns.aegis.x-y.z_1"])
    def test_literal_subjects_pass(self, subject: str) -> None:
        assert check_subject(subject) == subject

    @pytest.mark.parametrize(
        "subject", ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "a.b\n", "a.\t.b", "a>b"]
    )
    def test_anything_else_is_refused(self, subject: str) -> None:
        with pytest.raises(ValueError, match="without wildcards"):
            check_subject(subject)
