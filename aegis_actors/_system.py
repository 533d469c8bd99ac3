"""`ActorSystem`: the root of an actor tree and its task group.

Top-level actors are children of a guardian supervisor (path `/`); by default
they are `temporary` (a crashed top-level actor is logged and stays dead),
which suits tools and tests. A long-running service spawns one supervisor as
its top-level actor and lets the tree do the rest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from aegis_actors._actor import ActorFactory, Incarnation, run_incarnation
from aegis_actors._child_spec import (
    DEFAULT_SHUTDOWN,
    ChildSpec,
    Restart,
    StartChild,
    TerminateChild,
    WhichChildren,
    child_path,
)
from aegis_actors._mailbox import DEFAULT_CAPACITY, Mailbox
from aegis_actors._ref import ActorRef
from aegis_actors._supervisor import Supervisor
from aegis_actors._telemetry import tracked

log = structlog.get_logger("aegis_actors.system")


@dataclass(frozen=True, slots=True)
class SystemStatistics:
    """Counters of an actor system."""

    dead_letters: int
    """Messages that could not be delivered because their actor was dead."""


class ActorSystem:
    """Runs actors. Use as an async context manager; leaving it stops every actor.

    The actors run in a task of the system's own, so entering and leaving may
    happen in different tasks (pytest-asyncio sets a fixture up and tears it
    down in two), and what the code inside `async with` raises reaches the
    caller as it is, never wrapped in an `ExceptionGroup`.

    Example:

        async with ActorSystem() as system:
            ref = await system.spawn(MyActor, name="worker")
            print(await ref.ask("hello"))
    """

    def __init__(self, name: str = "aegis") -> None:
        self.name = name
        self._dead_letters = 0
        tracked.SYSTEMS.add(self)
        self._tg: TaskGroup | None = None
        self._guardian: ActorRef | None = None
        self._guardian_run: Incarnation | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing: anyio.Event | None = None

    async def __aenter__(self) -> ActorSystem:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the guardian in the system's own task; `close()` stops it."""
        if self._runner is not None:
            raise RuntimeError(f"actor system {self.name!r} is already started")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = anyio.Event()
        self._runner = asyncio.create_task(self._run(ready), name=f"actor system {self.name}")
        try:
            await asyncio.shield(ready)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every actor gracefully (reverse start order), then end the system's task.

        Waits for the stop even when the calling task is cancelled meanwhile.
        """
        runner, closing = self._runner, self._closing
        if runner is None or closing is None:
            return
        closing.set()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([runner])
        error = None if runner.cancelled() else runner.exception()
        if error is not None:
            raise error  # a bug of the runtime: say it

    async def _run(self, ready: asyncio.Future[None]) -> None:
        assert self._closing is not None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._guardian = ActorRef("/", Mailbox(DEFAULT_CAPACITY), self.dead_letter)
                self._guardian_run = await tg.start(
                    run_incarnation,
                    Supervisor(max_restarts=1_000_000, within_seconds=1.0),
                    self._guardian,
                    self,
                    None,
                    False,
                    self._guardian_exited,
                )
                ready.set_result(None)
                await self._closing.wait()
                with anyio.CancelScope(shield=True):
                    await self.shutdown()
        except BaseException as exc:
            if ready.done():
                raise
            # The guardian did not start: the starter gets the reason.
            ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
        finally:
            # After `cancel()` nothing serves the guardian: asks fail, never hang.
            if self._guardian is not None and self._guardian.is_alive:
                self._guardian.terminate(None)

    async def shutdown(self) -> None:
        """Stop every actor (reverse start order, each within its shutdown timeout)."""
        guardian, run = self._guardian, self._guardian_run
        if guardian is None or run is None:
            return
        guardian.stop()
        await run.done.wait()
        guardian.terminate(run.reason)

    def cancel(self) -> None:
        """Cancel every actor at once (no graceful stop): the last resort."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def _guardian_exited(self, incarnation: Incarnation) -> None:
        if incarnation.reason is not None:
            log.error("top-level supervisor failed", reason=repr(incarnation.reason))

    async def spawn(
        self,
        factory: ActorFactory,
        *,
        name: str,
        restart: Restart = Restart.TEMPORARY,
        shutdown: float | None = DEFAULT_SHUTDOWN,
        capacity: int = DEFAULT_CAPACITY,
    ) -> ActorRef:
        """Start a top-level actor at path `/{name}` and return its ref once it is ready.

        Raises:
            ChildSpecError: the name is taken or invalid.
            ActorStartError: the actor's `on_start` failed.
        """
        spec = ChildSpec(name, factory, restart=restart, shutdown=shutdown, capacity=capacity)
        ref: ActorRef = await self._root.ask(StartChild(spec), timeout=None)
        return ref

    async def stop(self, ref: ActorRef) -> None:
        """Stop a top-level actor for good and wait until it has stopped.

        A top-level actor that has already stopped is left as it is.

        Raises:
            ValueError: `ref` is not a top-level actor of this system (a child
                of another actor is stopped through its supervisor, with
                `TerminateChild`).
        """
        children = await self._root.ask(WhichChildren(), timeout=None)
        if not any(child.ref is ref for child in children):
            if not ref.is_alive and ref.path == child_path("/", ref.name):
                return
            raise ValueError(
                f"{ref.path} is not a top-level actor of actor system {self.name!r}; "
                "stop it through its supervisor (TerminateChild)"
            )
        await self._root.ask(TerminateChild(ref.name), timeout=None)
        await ref.wait_stopped()

    @property
    def _root(self) -> ActorRef:
        if self._guardian is None:
            raise RuntimeError("the actor system is not running (use `async with`)")
        return self._guardian

    def dead_letter(self, path: str, message: Any) -> None:
        """Count (and log at debug level) a message that found its actor dead."""
        self._dead_letters += 1
        log.debug("dead letter", to=path, message_type=type(message).__name__)

    def statistics(self) -> SystemStatistics:
        """An immutable snapshot of the system's counters."""
        return SystemStatistics(dead_letters=self._dead_letters)
