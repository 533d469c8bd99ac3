"""Child specs and the messages a supervisor answers: how a supervisor is told what to run.

As in OTP's `supervisor.erl`, a child spec is an `id`, a `start` factory, a
`restart` type (permanent / transient / temporary) and a `shutdown` timeout;
`validate_specs` checks every spec before anything starts. `Supervisor`
(in `_supervisor`) runs them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from aegis_actors._actor import ActorFactory
from aegis_actors._errors import ChildSpecError
from aegis_actors._mailbox import DEFAULT_CAPACITY
from aegis_actors._ref import ActorRef

DEFAULT_SHUTDOWN: Final = 5.0
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:=@+-]{0,127}$")


class Strategy(StrEnum):
    """Which children a supervisor restarts when one of them stops."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that stopped."""
    ONE_FOR_ALL = "one_for_all"
    """All children: the others are stopped (in reverse order) and all restarted."""
    REST_FOR_ONE = "rest_for_one"
    """The child that stopped and those started after it."""


class Restart(StrEnum):
    """When a stopped child is restarted."""

    PERMANENT = "permanent"
    """Always."""
    TRANSIENT = "transient"
    """Only after a crash (an exception), not after a normal stop."""
    TEMPORARY = "temporary"
    """Never; the child is removed when it stops."""


class AutoShutdown(StrEnum):
    """Whether a supervisor stops itself when significant children stop (OTP 24)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    """When any significant child stops (and is not restarted)."""
    ALL_SIGNIFICANT = "all_significant"
    """When the last significant child stops."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child."""

    id: str
    """Unique among its siblings; the last segment of the child's path."""
    start: ActorFactory
    """Makes a fresh actor; called at every start and restart."""
    restart: Restart = Restart.PERMANENT
    shutdown: float | None = DEFAULT_SHUTDOWN
    """Seconds the child gets to stop before it is cancelled; 0 = cancel at once,
    None = wait as long as it takes (give nested supervisors enough)."""
    capacity: int = DEFAULT_CAPACITY
    """Mailbox capacity (messages)."""
    significant: bool = False
    """With the supervisor's `auto_shutdown`, this child's exit stops the supervisor
    (its siblings depend on it). Only for transient or temporary children."""


def validate_specs(supervisor: str, specs: Sequence[ChildSpec]) -> None:
    """Check every spec before anything starts; raise `ChildSpecError` listing all problems."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        where = f"child {index} ({spec.id!r})"
        if not isinstance(spec.id, str) or not _ID_RE.match(spec.id):
            problems.append(
                f"{where}: id must be 1-128 characters of letters, digits and _.:=@+- "
                "not starting with a punctuation mark"
            )
        elif spec.id in seen:
            problems.append(f"{where}: duplicate id")
        else:
            seen.add(spec.id)
        if not callable(spec.start):
            problems.append(f"{where}: start must be a callable returning an Actor")
        if not isinstance(spec.restart, Restart):
            problems.append(f"{where}: restart must be one of {[r.value for r in Restart]}")
        if spec.shutdown is not None and not (
            isinstance(spec.shutdown, int | float) and spec.shutdown >= 0
        ):
            problems.append(f"{where}: shutdown must be >= 0 seconds or None")
        if not isinstance(spec.capacity, int) or spec.capacity < 1:
            problems.append(f"{where}: capacity must be an int >= 1")
        if spec.significant and spec.restart is Restart.PERMANENT:
            problems.append(f"{where}: a significant child must be transient or temporary")
    if problems:
        raise ChildSpecError(supervisor, problems)


def child_path(parent: str, child_id: str) -> str:
    """Path of a child under `parent` (the root's path is `/`)."""
    return f"/{child_id}" if parent == "/" else f"{parent}/{child_id}"


# -- messages a supervisor answers (use with `ask`) ---------------------------


@dataclass(frozen=True, slots=True)
class StartChild:
    """Add a child and start it; answers its `ActorRef`."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    """Stop a child for good and forget its spec; answers True if it existed."""

    id: str


@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Answers a tuple of `ChildInfo`, in start order."""


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as seen by its supervisor."""

    id: str
    ref: ActorRef
    running: bool
    restart_count: int
    restart: Restart
