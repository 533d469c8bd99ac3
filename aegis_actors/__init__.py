"""aegis_actors: a Python actor runtime on asyncio for services that talk over NATS."""

from aegis_actors._version import __version__
from aegis_actors.actor import Actor, Failure
from aegis_actors.backoff import Backoff
from aegis_actors.errors import (
    ActorDeadError,
    ActorStartError,
    AegisError,
    AskTimeoutError,
    ChildSpecError,
    ConfigError,
    MailboxFullError,
    NatsServerError,
    NatsUnavailableError,
    RestartIntensityError,
)
from aegis_actors.ref import ActorRef, Terminated
from aegis_actors.supervisor import (
    AutoShutdown,
    ChildInfo,
    ChildSpec,
    Restart,
    StartChild,
    Strategy,
    Supervisor,
    TerminateChild,
    WhichChildren,
)
from aegis_actors.system import ActorSystem, SystemStatistics

__all__ = [
    "Actor",
    "ActorDeadError",
    "ActorRef",
    "ActorStartError",
    "ActorSystem",
    "AegisError",
    "AskTimeoutError",
    "AutoShutdown",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildSpecError",
    "ConfigError",
    "Failure",
    "MailboxFullError",
    "NatsServerError",
    "NatsUnavailableError",
    "Restart",
    "RestartIntensityError",
    "StartChild",
    "Strategy",
    "Supervisor",
    "SystemStatistics",
    "TerminateChild",
    "Terminated",
    "WhichChildren",
    "__version__",
]
