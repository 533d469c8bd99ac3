"""A thin, strict layer over JetStream KV (its errors are translated in `_transport`).

Why not nats-py's `KeyValue` alone: it cannot write a revision-checked update
with a per-key TTL (`update()` takes no TTL), and its `get()` returns a
server-placed expiry marker as if it were a value (only `KV-Operation` is
checked, not `Nats-Marker-Reason`), and its watch can end a replay before the
last entries arrive. Here every read classifies tombstones by
both headers, every write can carry a TTL, and nats-py's exceptions become
`KeyExistsError`, `RevisionConflictError` or `StoreUnavailableError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import anyio
import nats.js.errors
import structlog
from nats.js import api

from aegis_actors._buckets import kv_stream, kv_subject
from aegis_actors._denials import guard
from aegis_actors._errors import (
    ConfigError,
    KeyExistsError,
    RevisionConflictError,
)
from aegis_actors._transport import JetStreamContext, Msg, client_of, store_errors

OPERATION_HEADER: Final = "KV-Operation"
MARKER_REASON_HEADER: Final = "Nats-Marker-Reason"
TTL_HEADER: Final = "Nats-TTL"
EXPECTED_LAST_HEADER: Final = "Nats-Expected-Last-Subject-Sequence"
_NO_MESSAGE: Final = 10037
#: Seconds the server keeps a replay's consumer once we stop listening. nats-py's
#: default (5 minutes) left one consumer behind per `entries()` call: a client
#: listing every second kept 300 of them alive.
REPLAY_CONSUMER_TTL: Final = 2.0
#: Seconds a replay may take (10k keys take ~0.3 s).
REPLAY_TIMEOUT: Final = 30.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One revision of a key; `deleted` for deletes, purges and TTL-expiry markers."""

    key: str
    value: bytes
    revision: int
    deleted: bool = False


def is_tombstone(headers: dict[str, str] | None) -> bool:
    """True for a delete, a purge or a server-placed marker (TTL expiry, purge, remove)."""
    if not headers:
        return False
    return headers.get(OPERATION_HEADER) in ("DEL", "PURGE") or MARKER_REASON_HEADER in headers


@asynccontextmanager
async def kv_call(
    js: JetStreamContext,
    bucket: str,
    key: str = "",
    expected: int | None = None,
    *,
    creating: bool = False,
) -> AsyncIterator[None]:
    """Around one KV call: a refused subject of the bucket fails it at once (not at its
    timeout), and nats-py's errors become the store family (`store_errors`)."""
    stream = kv_stream(bucket)
    refusable = [
        f"$JS.API.*.*.{stream}",  # STREAM.INFO, DIRECT.GET, CONSUMER.CREATE, ...
        f"$JS.API.*.*.{stream}.>",
        f"$JS.API.*.*.*.{stream}",  # STREAM.MSG.GET
        kv_subject(bucket, ">"),
    ]
    if creating:
        refusable.append("$JS.API.INFO")  # read before a bucket with per-key TTL is made
    with store_errors(bucket, key, expected):
        async with guard(client_of(js), *refusable):
            yield


@dataclass(frozen=True, slots=True)
class BucketPosition:
    """Where a bucket stands: a bucket deleted and made again has another `created`."""

    created: str
    revision: int


log = structlog.get_logger("aegis_actors.kv")

#: Copies of each aegis bucket on a JetStream cluster: one server may be lost
#: (or restarted for an upgrade) with no loss of data or of availability.
CLUSTER_REPLICAS: Final = 3
_NOT_CLUSTERED: Final = 10074  # "replicas > 1 not supported in non-clustered mode"
_INSUFFICIENT_RESOURCES: Final = 10023  # fewer JetStream servers than replicas


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """How a bucket must be configured; `ensure` creates or checks it."""

    name: str
    description: str = ""
    history: int = 1
    per_key_ttl: bool = False
    """Keys may carry their own TTL; expiry reaches watchers as a marker."""
    marker_ttl: float = 60.0
    """How long expiry markers stay (with `per_key_ttl`)."""
    replicas: int | None = None
    """Copies of the bucket; None: `CLUSTER_REPLICAS` on a JetStream cluster
    that has that many servers, else one."""


async def _create(js: JetStreamContext, spec: BucketSpec) -> None:
    """Create the bucket of `spec`; with `replicas=None`, replicated on a cluster.

    The server knows whether it is clustered and how many JetStream servers
    it has; the client does not (servers may not advertise each other), so
    the bucket is asked for `CLUSTER_REPLICAS` copies and made with one if
    the server cannot place them. This runs once, when the bucket is made.
    """

    def config(replicas: int) -> api.KeyValueConfig:
        return api.KeyValueConfig(
            bucket=spec.name,
            description=spec.description or None,
            history=spec.history,
            direct=True,
            replicas=replicas,
            limit_marker_ttl=spec.marker_ttl if spec.per_key_ttl else None,
        )

    if spec.replicas is not None:
        await js.create_key_value(config(spec.replicas))
        return
    try:
        await js.create_key_value(config(CLUSTER_REPLICAS))
    except nats.js.errors.APIError as exc:
        if exc.err_code not in (_NOT_CLUSTERED, _INSUFFICIENT_RESOURCES):
            raise
        if exc.err_code == _INSUFFICIENT_RESOURCES:
            log.warning(
                "cluster cannot place the bucket's copies: made with one",
                bucket=spec.name,
                replicas=CLUSTER_REPLICAS,
                error=exc.description,
            )
        await js.create_key_value(config(1))


class KVBucket:
    """One KV bucket with strict reads and revision-checked writes."""

    def __init__(self, js: JetStreamContext, name: str, *, direct: bool = True) -> None:
        self.js = js
        self.name = name
        self.stream = kv_stream(name)
        self._direct = direct
        self._prefix = kv_subject(name, "")

    @classmethod
    async def ensure(cls, js: JetStreamContext, spec: BucketSpec) -> KVBucket:
        """Open the bucket, creating it if missing; refuse one configured wrongly.

        Raises:
            ConfigError: the bucket exists without what `spec` needs (e.g. per-key
                TTL), which would fail silently later (expired keys never seen).
        """
        async with kv_call(js, spec.name, creating=True):
            try:
                info = await js.stream_info(kv_stream(spec.name))
            except nats.js.errors.NotFoundError:
                try:
                    await _create(js, spec)
                except nats.js.errors.BadRequestError:
                    # Another process created it first (racing start-ups).
                    info = await js.stream_info(kv_stream(spec.name))
                else:
                    return cls(js, spec.name, direct=True)
        cfg = info.config
        if spec.replicas is None and cfg.num_replicas == 1 and info.cluster and info.cluster.name:
            log.warning(
                "bucket has one copy on a cluster: losing its server loses it",
                bucket=spec.name,
                cluster=info.cluster.name,
                fix=f"nats stream edit KV_{spec.name} --replicas {CLUSTER_REPLICAS}",
            )
        if spec.per_key_ttl and not (cfg.allow_msg_ttl and cfg.subject_delete_marker_ttl):
            raise ConfigError(
                f"bucket {spec.name!r} exists without per-key TTL and delete markers, so "
                "expired keys would never reach watchers; delete it (`nats kv del "
                f"{spec.name}`) so aegis can create it right, or use another namespace"
            )
        return cls(js, spec.name, direct=bool(cfg.allow_direct))

    @property
    def prefix(self) -> str:
        """`$KV.{bucket}.`: a key's subject is the prefix and the key."""
        return self._prefix

    def _subject(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> Entry | None:
        """The current entry, or None if the key is missing, deleted or expired."""
        entry = await self.get_any(key)
        return None if entry is None or entry.deleted else entry

    async def get_any(self, key: str) -> Entry | None:
        """The last revision of `key`, tombstones included (None if never written)."""
        async with kv_call(self.js, self.name, key):
            try:
                msg = await self.js.get_msg(
                    self.stream, subject=self._subject(key), direct=self._direct
                )
            except nats.js.errors.NotFoundError:
                return None
        if msg.subject != self._subject(key) or msg.seq is None:
            return None
        return Entry(key, msg.data or b"", msg.seq, is_tombstone(msg.headers))

    async def create(self, key: str, value: bytes, *, ttl: int | None = None) -> int:
        """Write `key` only if it does not exist; return the revision.

        A key that was deleted or expired counts as absent (its tombstone's
        revision is checked, so a racing create still loses).

        Raises:
            KeyExistsError: the key exists.
        """
        try:
            return await self.update(key, value, revision=0, ttl=ttl)
        except RevisionConflictError:
            current = await self.get_any(key)
            if current is None or not current.deleted:
                raise KeyExistsError(self.name, key) from None
            try:
                return await self.update(key, value, revision=current.revision, ttl=ttl)
            except RevisionConflictError:
                raise KeyExistsError(self.name, key) from None

    async def update(self, key: str, value: bytes, *, revision: int, ttl: int | None = None) -> int:
        """Write `key` only if its last revision is `revision` (0 = never written).

        Raises:
            RevisionConflictError: another write came first.
        """
        headers = {EXPECTED_LAST_HEADER: str(revision)}
        return await self._publish(key, value, headers, ttl, expected=revision)

    async def put(self, key: str, value: bytes, *, ttl: int | None = None) -> int:
        """Write `key` unconditionally (with `ttl`, the key expires unless written again)."""
        return await self._publish(key, value, None, ttl)

    async def _publish(
        self,
        key: str,
        value: bytes,
        headers: dict[str, str] | None,
        ttl: int | None,
        expected: int | None = None,
    ) -> int:
        if ttl is not None:
            # TTLs are whole seconds: nats-py would send int(ttl), and 0 is refused.
            if ttl < 1 or int(ttl) != ttl:
                raise ValueError(f"a key TTL must be a whole number of seconds >= 1, got {ttl}")
            headers = {**(headers or {}), TTL_HEADER: f"{int(ttl)}s"}
        async with kv_call(self.js, self.name, key, expected):
            ack = await self.js.publish(self._subject(key), value, headers=headers)
        return int(ack.seq)

    async def delete(self, key: str, *, revision: int | None = None) -> None:
        """Delete `key` (watchers see a DEL); with `revision`, only if still current.

        Raises:
            RevisionConflictError: `revision` is stale.
        """
        headers = {OPERATION_HEADER: "DEL"}
        if revision is not None:
            headers[EXPECTED_LAST_HEADER] = str(revision)
        async with kv_call(self.js, self.name, key, revision):
            await self.js.publish(self._subject(key), b"", headers=headers)

    async def position(self) -> BucketPosition:
        """Which bucket this is (its creation time) and its latest revision, whatever the key.

        Every write, delete and purge raises the revision. The stream's leader
        answers, so it counts every write acknowledged before the call.
        """
        async with kv_call(self.js, self.name):
            info = await self.js.stream_info(self.stream)
        created = info.created.isoformat() if info.created else ""
        return BucketPosition(created, int(info.state.last_seq))

    async def last_revision(self) -> int:
        """The bucket's latest revision, whatever the key (0 when empty)."""
        return (await self.position()).revision

    async def at(self, revision: int) -> Entry | None:
        """The entry written at `revision`, whatever its key; None if no longer kept."""
        async with kv_call(self.js, self.name):
            try:
                msg = await self.js.get_msg(self.stream, seq=revision, direct=self._direct)
            except nats.js.errors.NotFoundError:
                return None
        subject = msg.subject or ""
        if not subject.startswith(self._prefix):
            return None
        return Entry(
            subject[len(self._prefix) :], msg.data or b"", revision, is_tombstone(msg.headers)
        )

    async def history(self, key: str) -> list[Entry]:
        """Every revision still kept for `key`, oldest first."""
        return await self._replay(key, history=True)

    async def entries(self, keys: str = ">") -> list[Entry]:
        """The current value of every live key matching `keys` (a subject filter)."""
        return [entry for entry in await self._replay(keys, history=False) if not entry.deleted]

    async def _replay(self, keys: str, *, history: bool) -> list[Entry]:
        """Read what the bucket holds for `keys`, as of at least the start of the call.

        Not nats-py's `KeyValue.watch()`: its end-of-replay marker compares the
        server's pending count with the messages the client has processed, so
        messages still in flight are missed and about 1 replay in 100 of a
        100-key bucket came back empty here (nats.py #842, fix pending in #995).
        Here the consumer's own count says how many messages the replay owes:
        those delivered (in flight or not) plus those pending when asked.
        """
        found: list[Entry] = []
        owed: list[int] = []  # set once the consumer has said how many
        complete = anyio.Event()
        prefix = self._prefix

        async def on_message(msg: Msg) -> None:
            subject = msg.subject
            found.append(
                Entry(
                    subject[len(prefix) :] if subject.startswith(prefix) else subject,
                    msg.data or b"",
                    int(msg.metadata.sequence.stream),
                    is_tombstone(msg.headers),
                )
            )
            if owed and len(found) >= owed[0]:
                complete.set()

        async with kv_call(self.js, self.name, keys):
            sub = await self.js.subscribe(
                prefix + keys,
                stream=self.stream,
                cb=on_message,
                ordered_consumer=True,
                deliver_policy=None if history else api.DeliverPolicy.LAST_PER_SUBJECT,
                inactive_threshold=REPLAY_CONSUMER_TTL,
            )
            try:
                info = await sub.consumer_info()
                delivered = info.delivered.consumer_seq if info.delivered else 0
                owed.append(delivered + (info.num_pending or 0))
                if len(found) >= owed[0]:
                    complete.set()
                # Only a purge racing the replay can leave messages owed forever.
                with anyio.fail_after(REPLAY_TIMEOUT):
                    await complete.wait()
            finally:
                await sub.unsubscribe()
        return found
