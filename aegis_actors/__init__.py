"""aegis_actors: a Python actor runtime on asyncio for services that talk over NATS."""

from aegis_actors._version import __version__
from aegis_actors.actor import Actor, Failure
from aegis_actors.backoff import Backoff
from aegis_actors.client import Client
from aegis_actors.connection import ConnectionActor, ConnectionSettings, TlsSettings
from aegis_actors.context import InstanceContext, RequestContext, current_request
from aegis_actors.discovery.caller import CallStatistics, InstanceCallStatistics
from aegis_actors.discovery.settings import CallStrategy, DiscoveryMode, DiscoverySettings
from aegis_actors.discovery.snapshot import DiscoveryStatistics, ServiceView
from aegis_actors.endpoints import event, rpc
from aegis_actors.errors import (
    ActorDeadError,
    ActorStartError,
    AegisError,
    AskTimeoutError,
    ChildSpecError,
    ConfigError,
    KeyExistsError,
    MailboxFullError,
    NatsServerError,
    NatsUnavailableError,
    NoRespondersError,
    PermissionDeniedError,
    PortInUseError,
    RequestTimeoutError,
    RestartIntensityError,
    RevisionConflictError,
    StoreError,
    StoreUnavailableError,
)
from aegis_actors.instance import InstanceSettings, RunningInstance, start_instance
from aegis_actors.leadership.actor import LeadershipActor
from aegis_actors.leadership.models import Leadership, LeadershipSettings
from aegis_actors.mgmt.actor import ManagementService
from aegis_actors.mgmt.client import ManagementClient
from aegis_actors.mgmt.models import ServiceDefinition
from aegis_actors.ref import ActorRef, Terminated
from aegis_actors.registry.heartbeat import HeartbeatSettings
from aegis_actors.registry.models import InstanceStatus, ServiceInstance
from aegis_actors.requester import Requester
from aegis_actors.service import ServiceActor
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
from aegis_actors.watch import (
    GetWatchStatistics,
    KeyChanged,
    KeyRemoved,
    KVWatchActor,
    Removal,
    WatchState,
    WatchStatistics,
    WatchSynced,
    WatchTopic,
)
from aegis_actors.wire import ErrorCode, Reply, ServiceError

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
    "CallStatistics",
    "CallStrategy",
    "ChildInfo",
    "ChildSpec",
    "ChildSpecError",
    "Client",
    "ConfigError",
    "ConnectionActor",
    "ConnectionSettings",
    "DiscoveryMode",
    "DiscoverySettings",
    "DiscoveryStatistics",
    "ErrorCode",
    "Failure",
    "GetWatchStatistics",
    "HeartbeatSettings",
    "InstanceCallStatistics",
    "InstanceContext",
    "InstanceSettings",
    "InstanceStatus",
    "KVWatchActor",
    "KeyChanged",
    "KeyExistsError",
    "KeyRemoved",
    "Leadership",
    "LeadershipActor",
    "LeadershipSettings",
    "MailboxFullError",
    "ManagementClient",
    "ManagementService",
    "NatsServerError",
    "NatsUnavailableError",
    "NoRespondersError",
    "PermissionDeniedError",
    "PortInUseError",
    "Removal",
    "Reply",
    "RequestContext",
    "RequestTimeoutError",
    "Requester",
    "Restart",
    "RestartIntensityError",
    "RevisionConflictError",
    "RunningInstance",
    "ServiceActor",
    "ServiceDefinition",
    "ServiceError",
    "ServiceInstance",
    "ServiceView",
    "StartChild",
    "StoreError",
    "StoreUnavailableError",
    "Strategy",
    "Supervisor",
    "SystemStatistics",
    "TerminateChild",
    "Terminated",
    "TlsSettings",
    "WatchState",
    "WatchStatistics",
    "WatchSynced",
    "WatchTopic",
    "WhichChildren",
    "__version__",
    "current_request",
    "event",
    "rpc",
    "start_instance",
]
