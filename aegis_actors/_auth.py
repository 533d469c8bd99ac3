"""Roles as NATS permissions: the authorization block `aegis auth` writes.

Every subject here comes from the builders aegis itself sends and subscribes
with (`subjects.Subjects`, `buckets`), in the fleet's namespace, so the
permissions cannot drift from what the code does. Four roles:

- `admin`: every management verb; call any service; `$SRV.*`; read the
  registry and the definitions; `aegis events` (consumers, resets, dead letters).
- `viewer`: the read verbs (`get`, `list`, `history`); `$SRV.*`; read the
  registry and the definitions.
- `client`: call any service (`aegis.rpc.>`, `aegis.inst.>`); read the registry.
- `service:{name}`: serve only its own subjects; write only its own registry
  and leadership keys; publish the events it declares (durably too); read
  its durable handlers' streams through its own consumers; call other services;
  read the configuration bucket if it binds a configuration; use its own buckets.

Common to all: replies go out through `allow_responses` (only to a request
the user received, once), never through a publish grant on `_INBOX.>`, and
each user's inbox is its own (`_INBOX.{user}.>`): nobody reads or forges
another's replies. docs/operations/securing.md gives the reasoning per
subject, and what stays open (any reader may create consumers on the
buckets it reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aegis_actors._buckets import (
    Buckets,
    instance_keys,
    kv_stream,
    kv_subject,
    leadership_key,
)
from aegis_actors._connection import DEFAULT_INBOX_PREFIX
from aegis_actors._endpoints import collect
from aegis_actors._events.grants import (
    DurableHandler,
    durable_handling,
    durable_publishing,
    events_admin,
)
from aegis_actors._mgmt.actor import SERVICE_NAME as MGMT_SERVICE
from aegis_actors._mgmt.actor import VERBS
from aegis_actors._service import ServiceActor
from aegis_actors._subjects import ControlVerb, Subjects, check_service_name, control, queue_group
from aegis_actors._version import __version__

JS_API: Final = "$JS.API"
#: Management verbs that change nothing: what a viewer may send.
READ_VERBS: Final = frozenset({"get", "list", "history"})
ROLES: Final = ("admin", "viewer", "client")


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one user may publish and subscribe to (a subscribe entry may be `subject queue`)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceGrants:
    """What a service needs beyond its name: read from its class by `grants_of`."""

    name: str
    events: tuple[tuple[str, bool], ...] = ()
    """Core event patterns it handles, and whether each is a broadcast (else a queue group)."""
    durable: tuple[DurableHandler, ...] = ()
    """Its durable event handlers (they read streams: docs/guides/events.md)."""
    publishes: tuple[str, ...] = ()
    own_buckets: tuple[str, ...] = ()
    binds_configuration: bool = False


def grants_of(cls: type[ServiceActor], *, binds_configuration: bool = False) -> ServiceGrants:
    """The grants of a service class (`binds_configuration`: a config file binds it)."""
    return ServiceGrants(
        name=cls.service_name,
        events=tuple((e.pattern, e.broadcast) for e in collect(cls).events if e.durable is None),
        durable=tuple(
            DurableHandler(e.name, e.pattern, e.broadcast, e.dedupe is not None)
            for e in collect(cls).events
            if e.durable is not None
        ),
        publishes=tuple(cls.published_events),
        own_buckets=tuple(cls.own_buckets),
        binds_configuration=binds_configuration or cls.configuration_binding is not None,
    )


@dataclass(frozen=True, slots=True)
class Role:
    """A role and its permissions, for one user (`user` names its inbox too)."""

    name: str
    user: str
    description: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def permissions(self, identity: str | None = None) -> Permissions:
        """The permissions of a user known as `identity` (default: `user`).

        The identity names the user's private inbox: the user name, or the
        public key for an NKey user (what `ConnectionSettings.inbox()` uses).
        """
        inbox = f"{DEFAULT_INBOX_PREFIX}.{identity or self.user}.>"
        # Publish to its own inbox: `connection.barrier` sends itself a message.
        return Permissions((*self.publish, inbox), (*self.subscribe, inbox))


# -- JetStream: what reading and writing a KV bucket takes -------------------------------


def read_bucket(bucket: str) -> list[str]:
    """Read a bucket: its info, direct gets, and consumers (watches, replays) on it.

    A consumer's filter is in the request body, not (with nats-py's ephemeral
    consumers) in the subject: a reader may read the whole bucket.
    """
    stream = kv_stream(bucket)
    return [
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        # The flow control of a watch stalled on us (the header names the subject).
        f"$JS.FC.{stream}.>",
    ]


def create_bucket(bucket: str) -> list[str]:
    """Create a bucket that is missing (aegis checks the config of one that exists).

    Creating one with per-key TTL reads the account's JetStream API level first
    (`$JS.API.INFO`: the account's usage and limits, nothing of its data).
    """
    return [f"{JS_API}.STREAM.CREATE.{kv_stream(bucket)}", f"{JS_API}.INFO"]


def write_keys(bucket: str, keys: str) -> list[str]:
    """Write (put, revision-checked update, delete) the keys matching `keys`."""
    return [kv_subject(bucket, keys)]


def use_bucket(bucket: str) -> list[str]:
    return [*read_bucket(bucket), *create_bucket(bucket), *write_keys(bucket, ">")]


# -- the roles ---------------------------------------------------------------------------


def _srv_all() -> list[str]:
    """Ask every service (`$SRV.PING`, `$SRV.INFO.{name}`, `$SRV.STATS.{name}.{id}`...)."""
    return [
        subject
        for verb in ControlVerb
        for subject in (control(verb), control(verb, "*"), control(verb, "*", "*"))
    ]


def _srv_own(service: str) -> list[str]:
    """Answer the NATS service protocol for `service` only."""
    return [
        subject
        for verb in ControlVerb
        for subject in (control(verb), control(verb, service), control(verb, service, "*"))
    ]


def _mgmt(subjects: Subjects, *, read_only: bool) -> list[str]:
    return [
        subjects.mgmt(resource, verb)
        for resource, verbs in VERBS.items()
        for verb in verbs
        if verb in READ_VERBS or not read_only
    ]


def _calls(subjects: Subjects) -> list[str]:
    return [subjects.rpc_any(), subjects.instance_any()]


def admin_role(namespace: str = "") -> Role:
    subjects, buckets = Subjects(namespace), Buckets(namespace)
    return Role(
        "admin",
        "admin",
        "every management verb; call any service; $SRV; read the registry and definitions",
        publish=(
            *_mgmt(subjects, read_only=False),
            *_calls(subjects),
            *_srv_all(),
            *read_bucket(buckets.registry),
            *read_bucket(buckets.definitions),
            *events_admin(subjects, buckets),
        ),
        subscribe=(),
    )


def viewer_role(namespace: str = "") -> Role:
    subjects, buckets = Subjects(namespace), Buckets(namespace)
    return Role(
        "viewer",
        "viewer",
        "read verbs (get, list, history); $SRV; read the registry and definitions",
        publish=(
            *_mgmt(subjects, read_only=True),
            *_srv_all(),
            *read_bucket(buckets.registry),
            *read_bucket(buckets.definitions),
        ),
        subscribe=(),
    )


def client_role(namespace: str = "") -> Role:
    subjects, buckets = Subjects(namespace), Buckets(namespace)
    return Role(
        "client",
        "client",
        "call any service; read the registry (discovery)",
        publish=(*_calls(subjects), *read_bucket(buckets.registry)),
        subscribe=(),
    )


def service_role(grants: ServiceGrants, namespace: str = "") -> Role:
    """`service:{name}`: its own subjects and keys, and what its class declares."""
    name = check_service_name(grants.name)
    subjects, buckets = Subjects(namespace), Buckets(namespace)
    registry = buckets.registry
    group = queue_group(name)
    publish = [
        *_calls(subjects),
        *read_bucket(registry),
        *create_bucket(registry),
        *write_keys(registry, instance_keys(name)),
        *write_keys(registry, leadership_key(name, "*")),
        *(subjects.event(p) for p in grants.publishes),
    ]
    subscribe = [
        f"{subjects.rpc_all(name)} {group}",
        subjects.instances_of(name),
        *_srv_own(name),
        *(
            subjects.event(p) if broadcast else f"{subjects.event(p)} {group}"
            for p, broadcast in grants.events
        ),
    ]
    # Publishing durably (when the domain has a stream) and durable handlers.
    publish += durable_publishing(grants.publishes, subjects, buckets)
    durable_publish, durable_subscribe = durable_handling(name, grants.durable, subjects, buckets)
    publish += durable_publish
    subscribe += durable_subscribe
    if grants.binds_configuration:
        publish += [*read_bucket(buckets.configuration), *create_bucket(buckets.configuration)]
    for bucket in grants.own_buckets:
        publish += use_bucket(buckets.named(bucket))
    what = "its own subjects and registry keys"
    if name == MGMT_SERVICE:
        # The management API: it answers every `aegis.mgmt.>` subject (404 for
        # unknown ones) and keeps the definitions and configurations.
        subscribe.append(f"{subjects.mgmt_root()}.> {group}")
        publish += [*use_bucket(buckets.definitions), *use_bucket(buckets.configuration)]
        what += "; the management API and its buckets"
    return Role(f"service:{name}", name, what, tuple(publish), tuple(subscribe))


def fleet_roles(services: Iterable[ServiceGrants], namespace: str = "") -> list[Role]:
    """admin, viewer, client, then one `service:{name}` per service.

    Raises:
        ValueError: a service named like a role's user (`admin`, `viewer`, `client`).
    """
    roles = [admin_role(namespace), viewer_role(namespace), client_role(namespace)]
    for grants in services:
        if grants.name in ROLES:
            raise ValueError(f"service {grants.name!r} has the name of a role: rename it")
        roles.append(service_role(grants, namespace))
    return roles


# -- the nats-server config --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """How a role's user proves who it is: a password (a literal, or an environment
    variable the server reads) or an NKey public key."""

    password: str | None = None
    password_env: str | None = None
    nkey: str | None = None

    def entry(self, user: str) -> list[str]:
        if self.nkey is not None:
            return [f"nkey: {_quote(self.nkey)}"]
        if self.password_env is not None:
            # A variable reference: the secret stays in the server's environment.
            return [f"user: {_quote(user)}", f"password: ${self.password_env}"]
        if self.password is not None:
            return [f"user: {_quote(user)}", f"password: {_quote(self.password)}"]
        raise ValueError("a credential needs a password, a password variable or an nkey")

    @property
    def identity(self) -> str | None:
        """The name the user's inbox is under: the public key of an NKey user."""
        return self.nkey


def password_variable(role: Role) -> str:
    """`AEGIS_PASSWORD_{USER}`: the variable the server reads a role's password from."""
    return "AEGIS_PASSWORD_" + role.user.upper().replace("-", "_")


def render(
    roles: Sequence[Role],
    credentials: Mapping[str, Credential] | None = None,
    *,
    namespace: str = "",
) -> str:
    """A nats-server `authorization` block for `roles` (include it, or paste it, in the
    server's config). `credentials` by role name; by default each role's password
    comes from the server's environment (`password_variable`)."""
    credentials = credentials or {}
    where = f'namespace "{namespace}"' if namespace else "no namespace"
    lines = [
        f"# aegis roles ({where}), written by aegis-actors {__version__}: `aegis auth`.",
        "# Re-run it when services change; see docs/operations/securing.md.",
        "authorization {",
        "  users: [",
    ]
    for role in roles:
        credential = credentials.get(role.name) or Credential(password_env=password_variable(role))
        permissions = role.permissions(credential.identity)
        lines.append(f"    # {role.name}: {role.description}")
        lines.append("    {")
        lines += [f"      {entry}" for entry in credential.entry(role.user)]
        lines.append("      permissions: {")
        lines.append(f"        publish: {{ allow: {_list(permissions.publish, 8)} }}")
        lines.append(f"        subscribe: {{ allow: {_list(permissions.subscribe, 8)} }}")
        lines.append("        allow_responses: true")
        lines.append("      }")
        lines.append("    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    # JSON strings are nats-server config strings; quoting keeps `$JS...` from
    # being read as a variable reference.
    return json.dumps(text)


def _list(items: Sequence[str], indent: int) -> str:
    pad = " " * indent
    body = "".join(f"\n{pad}    {_quote(item)}," for item in dict.fromkeys(items))
    return f"[{body}\n{pad}]"
