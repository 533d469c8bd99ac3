"""Every NATS subject aegis uses is built here, and nowhere else.

| what | subject |
| --- | --- |
| a method on any instance (queue group = service name) | `aegis.rpc.{service}.{method}` |
| a method on one instance | `aegis.inst.{service}.{instanceId}.{method}` |
| events | `events.{domain}.{action}` |
| dead letters (stream `aegis-dead-letters`) | `aegis.dead.{service}.{handler}` |
| a dead letter handed back to a service | `aegis.events.replay.{service}` |
| management | `aegis.mgmt.{resource}.{verb}` |
| NATS service protocol | `$SRV.{PING,INFO,STATS}[.{name}[.{id}]]` |

A non-empty namespace prefixes every subject but `$SRV.*` (`{ns}.aegis.rpc...`,
`{ns}.events...`), so that several fleets, or tests, can share one server.

The service is a token of its own in every subject that belongs to it, so a
NATS permission can name a service's subjects: a wildcard matches whole
tokens only (`aegis.inst.orders-*.>` would match the literal token
`orders-*`, never `orders-1a2b3c4d`), hence `aegis.inst.{service}.{id}.*`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: A service name (docs/reference/management-api.md); instance ids are
#: `{serviceName}-{8 hex digits}`.
SERVICE_NAME: Final = r"[a-z][a-z0-9-]{2,63}"
SERVICE_NAME_RE: Final = re.compile(rf"^{SERVICE_NAME}$")
METHOD_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
NAMESPACE_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: One token of a KV key (`service-leadership.{service}.{group}`), readable in logs.
STICKY_ACTIVE_GROUP_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: An event domain that has a stream (`events.{domain}.*`): the stream is named after it.
DOMAIN_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: A token of a subject: no dots, wildcards or whitespace.
_TOKEN_RE: Final = re.compile(r"^[^.*>\s]+$")
# These are checked with fullmatch(): with match(), `$` also matches before a
# trailing newline, so "abc\n" would pass as a name and break the subject it ends up in.


class ControlVerb(StrEnum):
    """Verbs of the NATS service protocol (ADR-32)."""

    PING = "PING"
    INFO = "INFO"
    STATS = "STATS"


def check_service_name(name: str) -> str:
    """Return `name` if it is a valid service name, else raise ValueError saying why."""
    if not isinstance(name, str) or not SERVICE_NAME_RE.fullmatch(name):
        raise ValueError(
            f"service name {name!r} must match {SERVICE_NAME_RE.pattern} "
            "(3-64 characters: lowercase letters, digits and '-', starting with a letter)"
        )
    return name


def check_method_name(name: str) -> str:
    """Return `name` if it is a valid method name (one subject token), else raise ValueError."""
    if not isinstance(name, str) or not METHOD_NAME_RE.fullmatch(name):
        raise ValueError(
            f"method name {name!r} must match {METHOD_NAME_RE.pattern} "
            "(letters, digits, '_' and '-'; no dots, wildcards or spaces)"
        )
    return name


def check_namespace(namespace: str) -> str:
    if namespace and not NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(f"namespace {namespace!r} must be empty or match {NAMESPACE_RE.pattern}")
    return namespace


def check_sticky_active_group(group: str) -> str:
    """Return `group` if it is a valid sticky-active group name, else raise ValueError."""
    if not isinstance(group, str) or not STICKY_ACTIVE_GROUP_RE.fullmatch(group):
        raise ValueError(
            f"sticky-active group {group!r} must match {STICKY_ACTIVE_GROUP_RE.pattern} "
            "(1-64 letters, digits, '_' and '-', starting with a letter or digit)"
        )
    return group


def check_event_subject(subject: str, *, pattern: bool = False) -> str:
    """Validate `events.{domain}.{action}...`; wildcards `*` / `>` only in patterns."""
    tokens = subject.split(".") if isinstance(subject, str) else []
    if len(tokens) < 3 or tokens[0] != "events":
        raise ValueError(f"event subject {subject!r} must look like events.{{domain}}.{{action}}")
    for i, token in enumerate(tokens[1:], start=1):
        if pattern and (token == "*" or (token == ">" and i == len(tokens) - 1)):
            continue
        if not _TOKEN_RE.fullmatch(token):
            what = "pattern" if pattern else "subject (no wildcards when publishing)"
            raise ValueError(f"event {what} {subject!r} has an invalid token {token!r}")
    return subject


def event_domain(subject: str) -> str:
    """The domain of an event subject or pattern (`events.order.created` -> `order`)."""
    return subject.split(".", 2)[1]


def check_durable_pattern(pattern: str) -> str:
    """Return the domain of a durable handler's pattern, else raise ValueError saying why.

    A durable handler reads one stream, and there is one stream per domain,
    so its pattern names the domain (`events.order.*`, not `events.*.created`).
    """
    domain = event_domain(check_event_subject(pattern, pattern=True))
    if not DOMAIN_RE.fullmatch(domain):
        raise ValueError(
            f"durable event pattern {pattern!r} must name its domain (match {DOMAIN_RE.pattern}): "
            "each domain's events live in a stream of their own"
        )
    return domain


def check_subject(subject: str) -> str:
    """Return `subject` if it is a literal subject (tokens, no wildcards), else raise ValueError."""
    tokens = subject.split(".") if isinstance(subject, str) else [""]
    if not all(_TOKEN_RE.fullmatch(token) for token in tokens):
        raise ValueError(
            f"subject {subject!r} must be dot-separated tokens without wildcards or whitespace"
        )
    return subject


def control(verb: ControlVerb, name: str | None = None, instance_id: str | None = None) -> str:
    """A NATS service protocol subject: `$SRV.VERB`, `$SRV.VERB.name`, `$SRV.VERB.name.id`."""
    if name is None:
        return f"$SRV.{verb.value}"
    if instance_id is None:
        return f"$SRV.{verb.value}.{name}"
    return f"$SRV.{verb.value}.{name}.{instance_id}"


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subjects within one namespace (empty: the subjects of docs/reference/wire-protocol.md)."""

    namespace: str = ""

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    @property
    def _pre(self) -> str:
        return f"{self.namespace}." if self.namespace else ""

    def rpc(self, service: str, method: str) -> str:
        return f"{self._pre}aegis.rpc.{service}.{method}"

    def rpc_all(self, service: str) -> str:
        """Wildcard for every method of a service (one subscription per instance)."""
        return f"{self._pre}aegis.rpc.{service}.*"

    def instance(self, instance_id: str, method: str) -> str:
        """`aegis.inst.{service}.{instanceId}.{method}` (the service read from the id)."""
        return f"{self._pre}aegis.inst.{service_of(instance_id)}.{instance_id}.{method}"

    def instance_all(self, instance_id: str) -> str:
        return f"{self._pre}aegis.inst.{service_of(instance_id)}.{instance_id}.*"

    def instances_of(self, service: str) -> str:
        """Every method of every instance of `service` (what its credentials may serve)."""
        return f"{self._pre}aegis.inst.{service}.*.*"

    def rpc_any(self) -> str:
        """Every method of every service (what a caller may send to)."""
        return f"{self._pre}aegis.rpc.>"

    def instance_any(self) -> str:
        """Every method of every instance (what a caller may send to)."""
        return f"{self._pre}aegis.inst.>"

    def mgmt(self, resource: str, verb: str) -> str:
        return f"{self._pre}aegis.mgmt.{resource}.{verb}"

    def mgmt_all(self) -> str:
        return f"{self._pre}aegis.mgmt.*.*"

    def mgmt_root(self) -> str:
        """The management API's root: `aegis-mgmt` answers every subject under it."""
        return f"{self._pre}aegis.mgmt"

    def own(self, subject: str) -> str:
        """A subject of a service's own choosing (`extra_subjects`), in this namespace."""
        return f"{self._pre}{subject}"

    def event(self, subject: str) -> str:
        """The wire subject of an event subject or pattern (`events.order.created`)."""
        return f"{self._pre}{subject}"

    def event_of(self, wire_subject: str) -> str:
        """Inverse of `event`: the subject as users name it."""
        return wire_subject[len(self._pre) :]

    def event_domain(self, domain: str) -> str:
        """Every event of one domain: the subjects of its stream."""
        return f"{self._pre}events.{domain}.>"

    def event_replay(self, service: str) -> str:
        """Where `aegis events dead replay` hands a dead letter back to a service (queue group)."""
        return f"{self._pre}aegis.events.replay.{service}"

    def dead_letter(self, service: str, handler: str) -> str:
        """The subject of a dead letter of `service`'s `handler`."""
        return f"{self._pre}aegis.dead.{service}.{handler}"

    def dead_letters(self, service: str | None = None) -> str:
        """Every dead letter, or those of one service: the dead-letter stream's subjects."""
        return f"{self._pre}aegis.dead.{service}.*" if service else f"{self._pre}aegis.dead.>"


#: JetStream's API prefix (no JetStream domain: aegis uses the account's own).
JS_API: Final = "$JS.API"


def consumer_next(stream: str, consumer: str) -> str:
    """Where a pull request for the next events of a consumer goes."""
    return f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}"


def service_of(instance_id: str) -> str:
    """The service name inside an instance id (`orders-1a2b3c4d` -> `orders`)."""
    return instance_id.rpartition("-")[0] or instance_id


def subject_matches(pattern: str, subject: str) -> bool:
    """True if `subject` is matched by `pattern` (NATS wildcards: `*` one token, `>` the rest)."""
    want = pattern.split(".")
    got = subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(got) == len(want)


def matcher(pattern: str) -> Callable[[str], bool]:
    """A fast test of "`subject` is matched by `pattern`" (one per subscription)."""
    head, _, tail = pattern.rpartition(".")
    if tail in ("*", ">") and "*" not in head and ">" not in head:
        prefix = head + "."
        if tail == ">":
            return lambda subject: subject.startswith(prefix)
        return lambda subject: subject.startswith(prefix) and "." not in subject[len(prefix) :]
    if "*" not in pattern and ">" not in pattern:
        return pattern.__eq__
    return lambda subject: subject_matches(pattern, subject)


def last_token(subject: str) -> str:
    """The method of an `aegis.rpc.*` / `aegis.inst.*` subject."""
    return subject.rpartition(".")[2]


#: Queue group of a service's `aegis.rpc.*` subscriptions and of its events.
def queue_group(service: str) -> str:
    return service
