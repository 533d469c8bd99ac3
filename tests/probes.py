"""Instrumented actors and an event journal for actor-core tests (no sleeps needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import structlog
import structlog.testing

from aegis_actors import Actor


class Crash(Exception):
    """Raised on purpose by probes."""


class Journal:
    """Records what actors did; tests wait on a condition instead of sleeping."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._waiters: list[tuple[Callable[[list[tuple[Any, ...]]], bool], anyio.Event]] = []

    def record(self, *event: Any) -> None:
        self.events.append(event)
        for predicate, flag in list(self._waiters):
            if predicate(self.events):
                flag.set()

    async def wait_for(
        self, predicate: Callable[[list[tuple[Any, ...]]], bool], timeout: float = 5.0
    ) -> None:
        if predicate(self.events):
            return
        flag = anyio.Event()
        entry = (predicate, flag)
        self._waiters.append(entry)
        try:
            with anyio.fail_after(timeout):
                await flag.wait()
        finally:
            self._waiters.remove(entry)

    async def wait_count(self, event: tuple[Any, ...], count: int, timeout: float = 5.0) -> None:
        await self.wait_for(lambda events: events.count(event) >= count, timeout)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


class Probe(Actor):
    """Records its lifecycle; answers messages; crashes or stops on request."""

    def __init__(self, name: str, journal: Journal, *, fail_start: bool = False) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.handled = 0

    async def on_restart(self, reason: BaseException | None) -> None:
        self.journal.record("restart", self.name, type(reason).__name__ if reason else None)

    async def on_start(self) -> None:
        if self.fail_start:
            self.journal.record("start-failed", self.name)
            raise Crash(f"{self.name} cannot start")
        self.journal.record("start", self.name)

    async def on_stop(self) -> None:
        self.journal.record("stop", self.name)

    async def on_receive(self, message: Any) -> Any:
        self.handled += 1
        if message == "crash":
            raise Crash(f"{self.name} crashed")
        if message == "stop":
            self.actor_stop()
            return None
        if message == "count":
            return self.handled
        if isinstance(message, anyio.Event):
            await message.wait()
            return "released"
        self.journal.record("message", self.name, message)
        return ("echo", message)


def probe(name: str, journal: Journal, **kwargs: Any) -> Callable[[], Probe]:
    return lambda: Probe(name, journal, **kwargs)


class LogJournal(Journal):
    """Captures structlog events (like `capture_logs`) and lets tests wait for them."""

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> Any:
        self.record(event_dict.get("event"), {**event_dict, "log_level": method})
        raise structlog.DropEvent

    def entries(self, event: str) -> list[dict[str, Any]]:
        return [e[1] for e in self.events if e[0] == event]

    async def wait_event(self, event: str, count: int = 1, timeout: float = 10.0) -> None:
        await self.wait_for(
            lambda events: sum(1 for e in events if e[0] == event) >= count, timeout
        )


@contextmanager
def watch_logs() -> Iterator[LogJournal]:
    """Capture every log line of the block into a `LogJournal`."""
    journal = LogJournal()
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars, journal]
    ):
        yield journal
