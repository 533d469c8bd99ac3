"""Text for people: what a stored text field may hold, how the CLI shows any text, trace ids.

Three pure functions guard the three ways text from a client reaches a person:

- `unsafe_character` decides what a text field of a request may hold. It
  refuses the characters that act on a terminal or on how text reads
  instead of showing as themselves: C0 and C1 controls and DEL (ESC starts
  the sequences that clear a screen or retitle a window; CR rewrites the
  line), bidirectional overrides, embeddings, isolates and marks (they
  reorder what follows: "Trojan Source"), zero-width and other invisible
  format characters (category Cf: a name that looks like another), line and
  paragraph separators, and lone surrogates (not UTF-8 at all). Multi-line
  fields (descriptions and comments) keep LF and TAB: people write lists and
  paragraphs there, and both are harmless once shown escaped (below); CR is
  refused everywhere, a line ends with LF alone.
- `printable` escapes, for a terminal, whatever a table cannot show as is
  (`printable_json` the same for JSON): data stored before these rules, or
  written straight into KV by another client, never reaches the terminal raw.
- `TRACE_ID` is what a caller's own trace id may be (`_telemetry.context`
  keeps it only then): any other value would be echoed into replies and logs.

The rules are in docs/reference/management-api.md ("Text fields").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, NamedTuple

#: The pydantic error type of a refused character (its 422 names `position` and `codePoint`).
UNSAFE_CHARACTER: Final = "unsafe_character"
#: Characters a multi-line field keeps although they are controls.
MULTILINE_ALLOWED: Final = frozenset("\n\t")
#: Unicode categories refused: controls, format characters (bidi, zero-width,
#: soft hyphen, tags...), surrogates, line and paragraph separators.
REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Trace ids as callers make them: W3C (32 hex), UUIDs, base64... up to 128 characters.
TRACE_ID: Final = re.compile(r"[A-Za-z0-9._:+/=@-]{1,128}")
_NAMES: Final = {
    "\x00": "NUL",
    "\t": "TAB",
    "\n": "LF",
    "\r": "CR",
    "\x1b": "ESC",
    "\x7f": "DEL",
    "\x9b": "CSI",
    "\u00ad": "SOFT HYPHEN",
    "\u200b": "ZERO WIDTH SPACE",
    "\u200c": "ZERO WIDTH NON-JOINER",
    "\u200d": "ZERO WIDTH JOINER",
    "\u200e": "LEFT-TO-RIGHT MARK",
    "\u200f": "RIGHT-TO-LEFT MARK",
    "\u2028": "LINE SEPARATOR",
    "\u2029": "PARAGRAPH SEPARATOR",
    "\u202e": "RIGHT-TO-LEFT OVERRIDE",
    "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2067": "RIGHT-TO-LEFT ISOLATE",
    "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
}


def plural(count: int, noun: str) -> str:
    """`1 service`, `2 services` (nouns with a plain `s` plural only)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class UnsafeCharacter(NamedTuple):
    """Where a refused character is (0-based, in characters) and what it is."""

    position: int
    character: str

    @property
    def code_point(self) -> str:
        """`U+001B`."""
        return f"U+{ord(self.character):04X}"

    @property
    def name(self) -> str:
        """`ESC`, `RIGHT-TO-LEFT OVERRIDE`, or Unicode's name (the code point if it has none)."""
        known = _NAMES.get(self.character)
        if known is not None:
            return known
        return unicodedata.name(self.character, "") or self.code_point

    def describe(self) -> str:
        """`control character U+001B (ESC) at position 4`."""
        kind = "control" if unicodedata.category(self.character) == "Cc" else "invisible"
        return f"{kind} character {self.code_point} ({self.name}) at position {self.position}"


def _refused(character: str) -> bool:
    return unicodedata.category(character) in REFUSED_CATEGORIES


def unsafe_character(text: str, *, multiline: bool = False) -> UnsafeCharacter | None:
    """The first character a text field may not hold, or None if `text` is clean.

    `multiline` (descriptions, comments) keeps LF and TAB.
    """
    if text.isascii() and text.isprintable():
        return None  # the usual case, in one pass at C speed
    for position, character in enumerate(text):
        if _refused(character) and not (multiline and character in MULTILINE_ALLOWED):
            return UnsafeCharacter(position, character)
    return None


_ESCAPES: Final = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def printable(text: str) -> str:
    """`text` with every character a terminal would act on written as an escape.

    LF, TAB and CR become `\\n`, `\\t`, `\\r` (a table cell stays one line);
    other refused characters `\\x1b`, `\\u202e`, `\\U000e0041`; a backslash
    itself is doubled only when the text needed escaping, so clean text shows as is.
    """
    if text.isascii() and text.isprintable():
        return text
    if not any(_refused(c) for c in text):
        return text
    out = []
    for character in text:
        if character in _ESCAPES:
            out.append(_ESCAPES[character])
        elif _refused(character):
            code = ord(character)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
        else:
            out.append(character)
    return "".join(out)


def _json_escape(character: str) -> str:
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters past the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def printable_json(text: str) -> str:
    """JSON text with every character a terminal would act on written as a `\\uXXXX` escape.

    The same JSON value, safe to print: JSON encoders escape C0 controls but
    may leave DEL, C1 controls, bidi overrides and zero-width characters raw.
    Line breaks and tabs outside strings (indentation) are kept.
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(_json_escape(c) if _refused(c) and c not in "\n\t\r" else c for c in text)
