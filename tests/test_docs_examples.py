"""The examples in README.md and docs/ run, and say what they print.

Every ```python block in the Markdown is a verbatim slice of a file under
docs/examples/, and every example file with a `main()` runs here against one
nats-server started for this module (so examples use the default namespace,
as a reader would). An example that ends with an `# Output:` comment block
must print exactly that (`...` stands for any text on a line).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import nats
import pytest
from structlog.testing import capture_logs

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    ManagementService,
    NatsServer,
    start_instance,
)

pytestmark = pytest.mark.nats

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "docs" / "examples"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def blocks(language: str) -> list[tuple[Path, str]]:
    return [
        (page, match.group(2))
        for page in PAGES
        for match in FENCE.finditer(page.read_text())
        if match.group(1) == language
    ]


def expected_output(source: str) -> str | None:
    """The `# Output:` comment block that ends an example, without the `# `."""
    lines = source.rstrip("\n").splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.strip() == "# Output:")
    except ValueError:
        return None
    return "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[start + 1 :])


def matches(expected: str, actual: str) -> bool:
    """Line by line equality, where `...` in `expected` stands for any text."""
    pattern = "".join(
        ".*?" if part == "..." else re.escape(part) for part in re.split(r"(\.\.\.)", expected)
    )
    return re.fullmatch(pattern, actual.rstrip("\n"), re.S) is not None


def runnable_examples() -> list[str]:
    return sorted(
        path.stem
        for path in EXAMPLES.glob("*.py")
        if not path.stem.startswith("test_")
        and path.stem != "conftest"
        and "\nasync def main(" in path.read_text()
    )


@pytest.fixture(scope="module")
def docs_server() -> Iterator[NatsServer]:
    """A server of their own: the examples use the default namespace, as readers do."""
    with NatsServer() as server:
        yield server


@pytest.fixture
def examples_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLES))


class TestBlocks:
    """Every Python block in the docs is a slice of an example file that the tests run."""

    def test_every_python_block_is_part_of_an_example_file(self) -> None:
        sources = [path.read_text() for path in EXAMPLES.glob("*.py")]
        stray = [
            f"{page.relative_to(ROOT)}: {block.splitlines()[0] if block else '(empty)'}"
            for page, block in blocks("python")
            if not any(block in source for source in sources)
        ]
        assert not stray, "python blocks that are not copied from docs/examples/*.py: " + ", ".join(
            stray
        )

    def test_every_example_file_is_shown_or_run(self) -> None:
        shown = "".join(page.read_text() for page in PAGES)
        unused = [p.name for p in EXAMPLES.iterdir() if p.is_file() and p.name not in shown]
        assert not unused, f"example files no page names: {unused}"


class TestExamples:
    """Each example's `main()` runs to the end and prints what its `# Output:` says."""

    @pytest.mark.usefixtures("examples_on_path")
    @pytest.mark.parametrize("name", runnable_examples())
    async def test_example_runs(
        self, name: str, docs_server: NatsServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        module = importlib.import_module(name)
        main = module.main
        with anyio.fail_after(30), capture_logs():  # log lines are not the output
            if inspect.signature(main).parameters:
                await main(docs_server.url)
            else:
                await main()
        expected = expected_output(inspect.getsource(module))
        if expected is not None:
            printed = capsys.readouterr().out
            assert matches(expected, printed), f"{name} printed:\n{printed}"


class TestReadme:
    """The README's service runs with `aegis run`, answers `aegis call`, and its test passes."""

    async def test_the_readme_service_runs_answers_and_passes_its_test(
        self, docs_server: NatsServer, tmp_path: Path
    ) -> None:
        with anyio.fail_after(40):
            async with anyio.create_task_group() as group:  # two subprocesses at once
                group.start_soon(self.readme_test_passes_in_a_fresh_project, tmp_path)
                await self.aegis_call_lines_print_what_the_readme_shows(docs_server)

    async def aegis_call_lines_print_what_the_readme_shows(self, server: NatsServer) -> None:
        readme = (ROOT / "README.md").read_text()
        calls = re.findall(r"^(aegis call .*)\n((?:# .*\n)+)", readme, re.M)
        assert len(calls) >= 2, "the README shows `aegis call` lines, each with its output"
        env = {**os.environ, "AEGIS_NATS_URL": server.url}
        env.pop("AEGIS_NAMESPACE", None)
        aegis = str(Path(sys.executable).parent / "aegis")

        async def check(command: str, comment: str) -> None:
            done = await anyio.run_process([aegis, *shlex.split(command)[1:]], env=env, check=False)
            printed = (done.stdout + done.stderr).decode()
            expected = "\n".join(line.removeprefix("# ") for line in comment.splitlines())
            code = re.search(r"\s+\(exit (\d)\)$", expected)
            expected = expected[: code.start()] if code else expected
            assert matches(expected, printed), f"{command} printed:\n{printed}"
            assert done.returncode == (int(code.group(1)) if code else 0), command

        run = [aegis, "--log-level", "error", "run", "greeter.toml"]
        async with await anyio.open_process(run, cwd=EXAMPLES, env=env) as fleet:
            assert fleet.stdout is not None
            started = (await fleet.stdout.receive()).decode()
            assert "2 instances running (greeter x2)" in started
            try:
                async with anyio.create_task_group() as group:
                    for command, comment in calls:
                        group.start_soon(check, command, comment)
            finally:
                fleet.terminate()
                assert await fleet.wait() == 0

    async def readme_test_passes_in_a_fresh_project(self, folder: Path) -> None:
        """Strict mode, no pytest configuration: what a new user has."""
        for name in ("greeter.py", "conftest.py", "test_greeter.py", "test_greeter_instances.py"):
            shutil.copy(EXAMPLES / name, folder / name)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        done = await anyio.run_process(command, cwd=folder, env=env, check=False)
        out = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 0, out
        assert "2 passed" in out, out


ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
REPLAYED = ["docs/reference/wire-protocol.md", "docs/reference/management-api.md"]


def exchanges(page: str) -> list[tuple[str, bytes, dict[str, str], str]]:
    """The (subject, request body, reply headers, reply) pairs a reference page shows."""
    found = []
    request: tuple[str, bytes] | None = None
    for match in FENCE.finditer(page):
        before = page[: match.start()].rstrip().splitlines()[-1]
        body = match.group(2).strip()
        asked = re.match(r"Request on `([^`]+)`:$", before)
        if asked:
            request = (asked.group(1), body.encode())
        elif before.startswith("Reply"):
            assert request is not None, f"a reply without a request: {body[:60]}"
            headers = dict(re.findall(r"`([A-Za-z-]+): ([^`]+)`", before))
            found.append((*request, headers, body))
            request = None
    return found


def same(shown: object, got: object, ids: dict[str, str], where: str = "reply") -> None:
    """`got` is what `shown` shows; ids and timestamps may differ, an instance's metadata too."""
    if isinstance(shown, dict) and isinstance(got, dict):
        assert shown.keys() == got.keys(), f"{where}: keys {sorted(got)} != {sorted(shown)}"
        for key in shown:
            if key == "metadata" and "lastHeartbeat" in got:  # an instance's host and pid
                continue
            same(shown[key], got[key], ids, f"{where}.{key}")
    elif isinstance(shown, list) and isinstance(got, list):
        assert len(shown) == len(got), f"{where}: {len(got)} items, the page shows {len(shown)}"
        for n, (a, b) in enumerate(zip(shown, got, strict=True)):
            same(a, b, ids, f"{where}[{n}]")
    elif isinstance(shown, str) and isinstance(got, str) and TIMESTAMP.fullmatch(shown):
        assert TIMESTAMP.fullmatch(got), f"{where}: {got!r} is not a timestamp"
    elif isinstance(shown, str) and isinstance(got, str) and ULID.fullmatch(shown):
        assert ids.setdefault(shown, got) == got, f"{where}: {got!r}, expected {ids[shown]!r}"
    elif isinstance(shown, str) and isinstance(got, str):
        for doc_id, real in ids.items():
            shown = shown.replace(doc_id, real)
        assert shown == got, f"{where}: {got!r} != {shown!r}"
    else:
        assert shown == got, f"{where}: {got!r} != {shown!r}"


class TestReferencePages:
    """The request and reply pairs of the reference pages are what a server answers."""

    @pytest.mark.parametrize("page", REPLAYED)
    async def test_replies_are_as_shown(self, page: str) -> None:
        shown = exchanges((ROOT / page).read_text())
        assert len(shown) >= 5
        with NatsServer() as server, capture_logs(), anyio.fail_after(30):
            settings = InstanceSettings(nats=ConnectionSettings(url=server.url))
            async with ActorSystem() as system:
                await start_instance(system, ManagementService, settings)
                sys.path.insert(0, str(EXAMPLES))
                try:
                    greeter = importlib.import_module("greeter").Greeter
                finally:
                    sys.path.remove(str(EXAMPLES))
                await start_instance(system, greeter, settings, instance_id="greeter-1a2b3c4d")
                client = await nats.connect(server.url)
                try:
                    ids: dict[str, str] = {}
                    for subject, body, headers, reply in shown:
                        for doc_id, real in ids.items():
                            body = body.replace(doc_id.encode(), real.encode())
                        msg = await client.request(subject, body, timeout=5)
                        where = f"{subject} {body.decode()[:80]}"
                        same(json.loads(reply), json.loads(msg.data), ids, "reply")
                        for name, value in headers.items():
                            got = (msg.headers or {}).get(name)
                            assert got == value, f"{where}: header {name}: {got!r}"
                finally:
                    await client.close()
