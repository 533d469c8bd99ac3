"""README.md and docs/ agree with the code: links, generated reference, config and CLI pages.

The examples themselves run in test_docs_examples.py.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from aegis_actors._config_file import load_config
from aegis_actors.cli import build_parser
from aegis_actors.config_reference import BEGIN, END, reference

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """`text` without its code blocks (a `[x](y)` in code is not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(page.read_text()).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            anchor, n = base, 1
            while anchor in found:  # GitHub numbers repeated headings
                anchor, n = f"{base}-{n}", n + 1
            found.add(anchor)
    return found


class TestLinks:
    """Every relative link in README.md and docs/ reaches a file, and its anchor a heading."""

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
    def test_relative_links_resolve(self, page: Path) -> None:
        broken = []
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{target} (no such heading)")
        assert not broken, f"{page.relative_to(ROOT)}: {broken}"

    def test_every_page_is_reachable_from_the_index(self) -> None:
        index = (DOCS / "index.md").read_text()
        pages = [p for p in DOCS.rglob("*.md") if p.name != "index.md"]
        missing = [str(p.relative_to(DOCS)) for p in pages if str(p.relative_to(DOCS)) not in index]
        assert not missing, f"docs/index.md does not link {missing}"

    def test_pages_the_code_cites_exist(self) -> None:
        cited = {
            (source.relative_to(ROOT), page)
            for source in (ROOT / "aegis_actors").rglob("*.py")
            for page in re.findall(r"docs/[\w/.-]+\.md", source.read_text())
        }
        assert cited, "the code cites docs/ pages"
        missing = [f"{source}: {page}" for source, page in cited if not (ROOT / page).exists()]
        assert not missing, missing

    def test_no_page_cites_documents_outside_the_repository(self) -> None:
        for page in PAGES:
            text = page.read_text()
            for outside in ("../shared", "SPEC.md", "NATS_FACTS", "SPEC section"):
                assert outside not in text, f"{page.relative_to(ROOT)} cites {outside}"


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make demo +#", readme, re.M)
    assert re.search(r"^make test +#", readme, re.M)


class TestConfigReference:
    """docs/reference/config.md holds the reference generated from the models."""

    def test_the_page_matches_the_models(self) -> None:
        page = (DOCS / "reference" / "config.md").read_text()
        generated = f"{BEGIN}\n\n{reference()}\n{END}"
        assert generated in page, (
            "docs/reference/config.md is out of date: run "
            "`python -m aegis_actors.config_reference --write docs/reference/config.md`"
        )

    def test_every_field_is_documented(self) -> None:
        text = reference()
        assert "| `class` |" in text
        assert "[services.heartbeat]" in text
        rows = [line for line in text.splitlines() if line.startswith("| `")]
        assert all(not line.rstrip().endswith("|  |") for line in rows), (
            "a field lacks a description"
        )


class TestConfigBlocks:
    """Every TOML block with a `[[services]]` entry is a valid config file."""

    def test_toml_blocks_load(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.syspath_prepend(str(DOCS / "examples"))
        checked = 0
        for page in PAGES:
            for language, block in FENCE.findall(page.read_text()):
                if language != "toml" or "[[services]]" not in block:
                    continue
                path = tmp_path / f"{page.stem}-{checked}.toml"
                path.write_text(block)
                load_config(path, environ={})  # raises ConfigError naming the mistake
                checked += 1
        assert checked >= 3


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "aegis"
) -> list[tuple[str, list[str]]]:
    """Every command line of the CLI (`aegis services create`) with its options."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}")
    options = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
        found.append((prefix, options))
    return found


class TestCliReference:
    """docs/reference/cli.md names every command and every option of the parser."""

    def test_every_command_and_option_is_documented(self) -> None:
        page = (DOCS / "reference" / "cli.md").read_text()
        missing = []
        for command, options in _commands(build_parser()):
            if f"`{command}" not in page:
                missing.append(command)
            missing += [f"{command} {o}" for o in options if o not in page]
        assert not missing, f"docs/reference/cli.md lacks {missing}"

    def test_global_options_are_documented(self) -> None:
        page = (DOCS / "reference" / "cli.md").read_text()
        for option in ("--version", "--log-format", "--log-level"):
            assert f"`{option}" in page
