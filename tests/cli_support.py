"""Running `aegis` commands in-process from async tests."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from aegis_actors.cli import build_parser


class Cli:
    """Runs `aegis` commands in a worker thread (the CLI runs its own event loop)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], url: str, namespace: str) -> None:
        self.capsys = capsys
        self.common = ["--url", url, "--namespace", namespace]

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        group, verb, *rest = argv
        # Parsed and run like main() does, minus configure_logging(): that one is
        # for a process, and would change logging for the rest of the test session.
        args = build_parser().parse_args([group, verb, *self.common, *rest])

        def run() -> int:
            with capture_logs():
                code: int = args.handler(args)
            return code

        self.capsys.readouterr()
        code = await anyio.to_thread.run_sync(run)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--json")
        assert code == 0, err or out
        return json.loads(out)
