"""Text rules: what a text field may hold, how the CLI shows any text, which trace ids are kept."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from aegis_actors._configuration.requests import CreateApplication, UpdateConfiguration
from aegis_actors._dispatch import request_context
from aegis_actors._mgmt.models import CreateService, UpdateService
from aegis_actors._text import (
    REFUSED_CATEGORIES,
    printable,
    printable_json,
    unsafe_character,
)
from aegis_actors._wire import TRACE_ID_HEADER, from_validation_error

HOSTILE = [
    ("\x00", "U+0000"),
    ("\x1b", "U+001B"),  # ESC: starts CSI/OSC sequences (clear screen, window title)
    ("\r", "U+000D"),  # rewrites the line
    ("\x7f", "U+007F"),
    ("\x9b", "U+009B"),  # C1 CSI
    ("\u202e", "U+202E"),  # right-to-left override
    ("\u2066", "U+2066"),  # left-to-right isolate
    ("\u200b", "U+200B"),  # zero-width space
    ("\u200d", "U+200D"),  # zero-width joiner
    ("\ufeff", "U+FEFF"),
    ("\u00ad", "U+00AD"),  # soft hyphen
    ("\u2028", "U+2028"),  # line separator
    ("\U000e0041", "U+E0041"),  # tag letter
]
#: Any text, with the characters that matter over-represented.
TEXTS = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from([c for c, _ in HOSTILE] + ["\n", "\t", "\\", "é", "日", "\u0301"]),
    ),
    max_size=40,
)


def refused(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in REFUSED_CATEGORIES]


class TestUnsafeCharacter:
    """A text field refuses controls and invisible characters; multi-line fields keep LF and TAB."""

    @pytest.mark.parametrize(("character", "code_point"), HOSTILE)
    def test_each_hostile_character_is_found_with_its_position_and_code_point(
        self, character: str, code_point: str
    ) -> None:
        found = unsafe_character(f"ab{character}c", multiline=True)
        assert found is not None
        assert (found.position, found.code_point) == (2, code_point)
        assert code_point in found.describe()

    def test_lf_and_tab_are_text_in_multi_line_fields_only(self) -> None:
        assert unsafe_character("a\nb\tc", multiline=True) is None
        one_line = unsafe_character("a\nb", multiline=False)
        assert one_line is not None
        assert one_line.position == 1

    @pytest.mark.parametrize("text", ["", "team-a", "Équipe données 日本", "a b", "emoji 🚀"])
    def test_ordinary_text_is_clean(self, text: str) -> None:
        assert unsafe_character(text) is None

    @given(TEXTS)
    def test_the_first_refused_character_is_the_one_named(self, text: str) -> None:
        found = unsafe_character(text, multiline=True)
        bad = [i for i, c in enumerate(text) if c in refused(text) and c not in "\n\t"]
        assert (found.position if found else None) == (bad[0] if bad else None)


class TestRequestFields:
    """Owner, description and comments refuse hostile text with a 422 naming field and position."""

    @pytest.mark.parametrize(
        ("model", "body", "field"),
        [
            (CreateService, {"serviceName": "orders", "owner": "a\x1b[2J", "version": "1.0.0"}, "owner"),
            (CreateService, {"serviceName": "orders", "owner": "a", "description": "x\u202ey", "version": "1.0.0"}, "description"),
            (UpdateService, {"serviceName": "orders", "revision": 1, "owner": "a\nb"}, "owner"),
            (CreateApplication, {"name": "billing", "comments": "ok\r\nnot ok"}, "comments"),
            (UpdateConfiguration, {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "revision": 1, "comments": "\x9b"}, "comments"),
        ],
    )  # fmt: skip
    def test_a_hostile_character_is_a_422_naming_field_position_and_code_point(
        self, model: type[Any], body: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(model).validate_json(json.dumps(body))
        error = from_validation_error(caught.value)
        assert (error.status, error.details["field"]) == (422, field)
        assert isinstance(error.details["position"], int)
        assert str(error.details["codePoint"]).startswith("U+")
        assert error.details["codePoint"] in error.message
        assert not refused(error.message), "the message never holds the character itself"

    def test_multi_line_descriptions_and_comments_are_kept_as_sent(self) -> None:
        body = {"serviceName": "orders", "owner": "a", "description": "1.\tx\n2.\ty", "version": "1.0.0"}  # fmt: skip
        assert CreateService.model_validate(body).description == "1.\tx\n2.\ty"
        assert CreateApplication.model_validate({"name": "billing", "comments": "a\nb"}).comments

    def test_a_field_name_with_escapes_is_shown_escaped(self) -> None:
        with pytest.raises(ValidationError) as caught:
            CreateApplication.model_validate_json(b'{"name": "billing", "\\u001b[2J": 1}')
        error = from_validation_error(caught.value)
        assert "\x1b" not in error.message
        assert error.details["field"] == "\\x1b[2J"


class TestPrintable:
    """What the CLI prints holds nothing a terminal acts on, and clean text shows as is."""

    @given(TEXTS)
    def test_nothing_refused_survives(self, text: str) -> None:
        assert refused(printable(text)) == []

    @given(st.text(st.characters(blacklist_categories=tuple(REFUSED_CATEGORIES))))
    def test_clean_text_is_unchanged(self, text: str) -> None:
        assert printable(text) == text

    def test_escapes_are_readable(self) -> None:
        assert printable("a\x1b[2J\nb\u202e") == "a\\x1b[2J\\nb\\u202e"

    @given(st.recursive(st.one_of(st.none(), st.integers(), TEXTS), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3), max_leaves=10))  # fmt: skip
    def test_json_keeps_its_value_and_loses_what_a_terminal_acts_on(self, value: Any) -> None:
        for indent in (None, 2):
            shown = printable_json(json.dumps(value, indent=indent, ensure_ascii=False))
            assert json.loads(shown) == value
            assert [c for c in refused(shown) if c != "\n"] == []


class TestTraceIds:
    """A caller's trace id is kept when short and printable, else replaced by a fresh one."""

    @pytest.mark.parametrize(
        "trace_id",
        [
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "abc",
            "0af7651916cd43dd",
            "a1b2-c3d4:e5/f6+g7=@x.y_z",
        ],
    )
    def test_usual_ids_are_kept(self, trace_id: str) -> None:
        context, _ = request_context("s", "m", {TRACE_ID_HEADER: trace_id}, None)
        assert context.trace_id == trace_id

    @pytest.mark.parametrize(
        "trace_id", [None, "", "a" * 129, "a\x1b[2Jb", "x" * 20_000, "a b", "é", "a\nb", "a\u202e"]
    )
    def test_others_are_replaced_by_a_fresh_id(self, trace_id: str | None) -> None:
        headers = None if trace_id is None else {TRACE_ID_HEADER: trace_id}
        fresh = request_context("s", "m", headers, None)[0].trace_id
        assert fresh != trace_id
        assert len(fresh) == 32
        assert request_context("s", "m", {TRACE_ID_HEADER: fresh}, None)[0].trace_id == fresh
