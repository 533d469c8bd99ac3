"""aegis_actors: a Python actor runtime on asyncio for services that talk over NATS.

Everything a user writes is imported from here; the underscore-prefixed
modules are machinery and may change without notice. The pytest plugin is
`aegis_actors.testing`; the command line is `aegis` (`aegis_actors.cli`).
"""

from aegis_actors._actor import Actor, Failure
from aegis_actors._child_spec import (
    AutoShutdown,
    ChildInfo,
    ChildSpec,
    Restart,
    StartChild,
    Strategy,
    TerminateChild,
    WhichChildren,
)
from aegis_actors._client import Client
from aegis_actors._configuration.binding import ConfigurationBinding, ConfigurationBindingSettings
from aegis_actors._connection import ConnectionSettings, TlsSettings, connect
from aegis_actors._discovery.caller import CallOptions, CallStatistics, InstanceCallStatistics
from aegis_actors._discovery.settings import CallStrategy, DiscoveryMode, DiscoverySettings
from aegis_actors._discovery.snapshot import DiscoveryStatistics, ServiceView
from aegis_actors._dispatch import RequestContext, current_request
from aegis_actors._endpoints import event, rpc
from aegis_actors._errors import (
    ActorDeadError,
    ActorStartError,
    AegisError,
    AskTimeoutError,
    BucketNotFoundError,
    ChildSpecError,
    ConfigError,
    ErrorCode,
    EventNotStoredError,
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
    ServiceError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
    TransportError,
)
from aegis_actors._eventloop import run
from aegis_actors._events.context import EventContext, current_event
from aegis_actors._events.options import DeliverPolicy, DurableOptions
from aegis_actors._events.publish import Published
from aegis_actors._events.settings import EventsSettings, StreamLimits
from aegis_actors._instance import Instance
from aegis_actors._instance_tree import RunningInstance, start_instance
from aegis_actors._kv import BucketSpec, Entry, KVBucket
from aegis_actors._leadership.models import Leadership, LeadershipSettings
from aegis_actors._logs import LogFormat, configure_logging
from aegis_actors._mgmt.actor import ManagementService
from aegis_actors._mgmt.client import ManagementClient
from aegis_actors._mgmt.models import ServiceDefinition
from aegis_actors._models import Timestamp, WireModel
from aegis_actors._nats_server import NatsCluster, NatsServer
from aegis_actors._ref import ActorRef, Terminated
from aegis_actors._registry.heartbeat import HeartbeatSettings
from aegis_actors._registry.models import InstanceStatus, ServiceInstance
from aegis_actors._service import ServiceActor
from aegis_actors._settings import InstanceSettings, ServiceSettings
from aegis_actors._subjects import Subjects
from aegis_actors._supervisor import Supervisor
from aegis_actors._system import ActorSystem, SystemStatistics
from aegis_actors._telemetry.metrics import Counter, Gauge, Histogram, enable_metrics, serve_metrics
from aegis_actors._telemetry.settings import MetricsSettings, TracingSettings
from aegis_actors._telemetry.setup import disable_tracing, enable_tracing
from aegis_actors._version import __version__
from aegis_actors._wire import Reply

__all__ = [
    "Actor",
    "ActorDeadError",
    "ActorRef",
    "ActorStartError",
    "ActorSystem",
    "AegisError",
    "AskTimeoutError",
    "AutoShutdown",
    "BucketNotFoundError",
    "BucketSpec",
    "CallOptions",
    "CallStatistics",
    "CallStrategy",
    "ChildInfo",
    "ChildSpec",
    "ChildSpecError",
    "Client",
    "ConfigError",
    "ConfigurationBinding",
    "ConfigurationBindingSettings",
    "ConnectionSettings",
    "Counter",
    "DeliverPolicy",
    "DiscoveryMode",
    "DiscoverySettings",
    "DiscoveryStatistics",
    "DurableOptions",
    "Entry",
    "ErrorCode",
    "EventContext",
    "EventNotStoredError",
    "EventsSettings",
    "Failure",
    "Gauge",
    "HeartbeatSettings",
    "Histogram",
    "Instance",
    "InstanceCallStatistics",
    "InstanceSettings",
    "InstanceStatus",
    "KVBucket",
    "KeyExistsError",
    "Leadership",
    "LeadershipSettings",
    "LogFormat",
    "MailboxFullError",
    "ManagementClient",
    "ManagementService",
    "MetricsSettings",
    "NatsCluster",
    "NatsServer",
    "NatsServerError",
    "NatsUnavailableError",
    "NoRespondersError",
    "PermissionDeniedError",
    "PortInUseError",
    "Published",
    "Reply",
    "RequestContext",
    "RequestTimeoutError",
    "Restart",
    "RestartIntensityError",
    "RevisionConflictError",
    "RunningInstance",
    "ServiceActor",
    "ServiceDefinition",
    "ServiceError",
    "ServiceInstance",
    "ServiceSettings",
    "ServiceView",
    "StartChild",
    "StoreError",
    "StorePermissionError",
    "StoreUnavailableError",
    "Strategy",
    "StreamLimits",
    "Subjects",
    "Supervisor",
    "SystemStatistics",
    "TerminateChild",
    "Terminated",
    "Timestamp",
    "TlsSettings",
    "TracingSettings",
    "TransportError",
    "WhichChildren",
    "WireModel",
    "__version__",
    "configure_logging",
    "connect",
    "current_event",
    "current_request",
    "disable_tracing",
    "enable_metrics",
    "enable_tracing",
    "event",
    "rpc",
    "run",
    "serve_metrics",
    "start_instance",
]
