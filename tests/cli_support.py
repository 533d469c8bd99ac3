"""Running `aegis` commands in-process from async tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from aegis_actors import ActorSystem, InstanceSettings, ManagementService, start_instance
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


@asynccontextmanager
async def management_cli(
    capsys: pytest.CaptureFixture[str], settings: InstanceSettings, url: str
) -> AsyncIterator[Cli]:
    """A management service running for the block, and a `Cli` to run commands against it."""
    async with ActorSystem() as system:
        await start_instance(system, ManagementService, settings)
        yield Cli(capsys, url, settings.namespace)
