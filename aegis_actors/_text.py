"""Wording for people, shared by the CLI's outputs."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`1 service`, `2 services` (nouns with a plain `s` plural only)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
