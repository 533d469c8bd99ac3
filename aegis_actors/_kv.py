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

import json
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
    StoreUnavailableError,
)
from aegis_actors._transport import JetStreamContext, Msg, NatsClient, client_of, store_errors

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
SUBJECT_HEADER: Final = "Nats-Subject"
SEQUENCE_HEADER: Final = "Nats-Sequence"
#: Messages per batch of a direct get, and the bytes after which the server
#: ends a batch early: 1024 configurations of 64 KiB would be 64 MiB at once.
BATCH: Final = 1024
BATCH_BYTES: Final = 4 * 1024 * 1024
#: Keys a multi-last direct get answers for at most (nats-server's limit; past
#: it the server answers 413 and the read scans instead).
MULTI_LAST_MAX: Final = 1024
#: Batches one read may take before giving up: writes arriving faster than
#: the read moves on would otherwise keep it going (a million messages).
MAX_BATCHES: Final = 4096


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


def _connection(js: JetStreamContext) -> tuple[NatsClient, str, float]:
    """The client, the API prefix (`$JS.API`, or a domain's) and the timeout of `js`.

    nats-py keeps them private and has no batched direct get of its own.
    """
    client = client_of(js)
    if client is None:
        raise StoreUnavailableError("the JetStream context has no connection")
    return client, js._prefix, js._timeout


async def _direct_batch(
    nc: NatsClient, subject: str, request: dict[str, object], timeout: float
) -> tuple[list[Msg], dict[str, str]]:
    """Send one batched direct get; its messages and the headers of the status that ends it.

    The server answers a batch with its messages, then an empty message
    with a `Status` header: 204 (end of batch), 404 (nothing matches), 413
    (a multi-last get for too many keys), or 503 from the server itself if
    no one answers direct gets for this stream.
    """
    messages: list[Msg] = []
    end: list[dict[str, str]] = []
    done = anyio.Event()

    async def on_message(msg: Msg) -> None:
        headers = msg.headers or {}
        if "Status" in headers and not msg.data:
            end.append(headers)
            done.set()
        else:
            messages.append(msg)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_message)
    try:
        await nc.publish(subject, json.dumps(request).encode(), reply=inbox)
        with anyio.fail_after(timeout):
            await done.wait()
    finally:
        await sub.unsubscribe()
    return messages, end[0]


class _NoDirectGets(Exception):
    """No responder for a direct get: the stream is missing or does not allow them."""


def _newest_per_key(entries: list[Entry]) -> list[Entry]:
    newest: dict[str, Entry] = {}
    for entry in entries:
        known = newest.get(entry.key)
        if known is None or known.revision < entry.revision:
            newest[entry.key] = entry
    return sorted(newest.values(), key=lambda e: e.key)


def _by_revision(entries: list[Entry]) -> list[Entry]:
    return sorted({entry.revision: entry for entry in entries}.values(), key=lambda e: e.revision)


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
        if not cfg.allow_direct:
            # Made by another tool (nats-py's create_key_value leaves it off):
            # lists then need a consumer each, and many clients listing at
            # once can reach the server's consumer limit.
            log.warning(
                "bucket has no direct gets: every list creates a consumer",
                bucket=spec.name,
                fix=f"nats stream edit KV_{spec.name} --allow-direct",
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

    async def since(self, first: int, last: int) -> list[Entry]:
        """Every entry still kept from revision `first` to `last` (maybe later ones too),
        oldest first, whatever the key: one batched direct get, not one get per revision."""
        if self._direct:
            try:
                kept: dict[int, Entry] = {}
                await self._batches({}, ">", multi_last=False, start=first, every=kept)
                return sorted(kept.values(), key=lambda e: e.revision)
            except _NoDirectGets:
                await self._check_direct()
        found: list[Entry | None] = [None] * (last - first + 1)

        async def fetch(revision: int) -> None:
            found[revision - first] = await self.at(revision)

        async with anyio.create_task_group() as tg:
            for revision in range(first, last + 1):
                tg.start_soon(fetch, revision)
        return [entry for entry in found if entry is not None]

    async def history(self, key: str) -> list[Entry]:
        """Every revision still kept for `key`, oldest first."""
        if self._direct:
            try:
                return sorted((await self._scan(key)).values(), key=lambda e: e.revision)
            except _NoDirectGets:
                await self._check_direct()
        return _by_revision(await self._replay(key, history=True))

    async def entries(self, keys: str = ">") -> list[Entry]:
        """The current value of every live key matching `keys` (a subject filter), each once."""
        return [entry for entry in await self.latest(keys) if not entry.deleted]

    async def latest(self, keys: str = ">") -> list[Entry]:
        """The last revision of every key matching `keys`, tombstones included, each key once.

        Whatever writes land during the read, a key is listed once, at the
        newest revision read (docs/reference/management-api.md, "Lists"). Read
        with batched direct gets, so no consumer is created: a multi-last
        get when at most `MULTI_LAST_MAX` keys match (the server's limit),
        else a scan of the kept messages matching `keys`, newest per key kept.
        """
        if self._direct:
            found: dict[str, Entry] = {}
            try:
                start = await self._batches(found, keys, multi_last=True)
                if start is not None:  # more keys than a multi-last get may return
                    await self._batches(found, keys, multi_last=False, start=start)
            except _NoDirectGets:
                await self._check_direct()
            else:
                return sorted(found.values(), key=lambda e: e.key)
        return _newest_per_key(await self._replay(keys, history=False))

    async def _check_direct(self) -> None:
        """After a direct get no one answered: the bucket is gone, or has no direct gets.

        Raises:
            BucketNotFoundError: the bucket does not exist.
            StoreUnavailableError: it has direct gets, yet none answered.
        """
        async with kv_call(self.js, self.name):
            info = await self.js.stream_info(self.stream)
        if info.config.allow_direct:
            raise StoreUnavailableError(f"no server answered a direct get of {self.name}")
        self._direct = False  # made by another tool: read through a consumer

    async def _scan(self, keys: str) -> dict[int, Entry]:
        """Every kept message of `keys` by revision (a direct-get scan, no consumer)."""
        found: dict[str, Entry] = {}
        kept: dict[int, Entry] = {}
        await self._batches(found, keys, multi_last=False, every=kept)
        return kept

    async def _batches(
        self,
        found: dict[str, Entry],
        keys: str,
        *,
        multi_last: bool,
        start: int = 1,
        every: dict[int, Entry] | None = None,
    ) -> int | None:
        """Read `keys` batch by batch into `found` (newest per key) from revision `start`.

        Each batch continues after the last revision of the one before: a
        key written meanwhile comes again at its new revision (and wins), a
        key deleted meanwhile comes again as a tombstone; nothing already
        read can be missed, because revisions only grow.

        Returns:
            None when done; the revision to scan from when a multi-last get
            refused to answer for so many keys (`multi_last` only).
        """
        nc, api_prefix, timeout = _connection(self.js)
        subject = f"{api_prefix}.DIRECT.GET.{self.stream}"
        pattern = self._prefix + keys
        for _ in range(MAX_BATCHES):
            request: dict[str, object] = {"batch": BATCH, "max_bytes": BATCH_BYTES}
            if multi_last:
                request["multi_last"] = [pattern]
                if start > 1:
                    request["seq"] = start
            else:
                request["seq"] = start
                request["next_by_subj"] = pattern
            async with kv_call(self.js, self.name, keys):
                messages, end = await _direct_batch(nc, subject, request, timeout)
            status = end.get("Status", "")
            if status == "404":  # nothing (more) matches
                return None
            if status == "503":  # no one answers direct gets for this stream
                raise _NoDirectGets
            if status == "413" and multi_last:
                return start
            if status != "204":
                raise StoreUnavailableError(
                    f"direct get of {self.name}/{keys} answered {status} "
                    f"{end.get('Description', '')}".rstrip()
                )
            for msg in messages:
                entry = self._entry(msg)
                if every is not None:
                    every[entry.revision] = entry
                known = found.get(entry.key)
                if known is None or known.revision < entry.revision:
                    found[entry.key] = entry
            last = int(end.get("Nats-Last-Sequence") or 0)
            if messages and self._revision_of(messages[-1]) != last:
                # nats-py dropped part of the batch (a slow consumer): read it again.
                raise StoreUnavailableError(f"a direct get of {self.name}/{keys} lost messages")
            if int(end.get("Nats-Num-Pending") or 0) == 0 or not messages:
                return None
            start = last + 1
        raise StoreUnavailableError(
            f"{self.name}/{keys} kept changing through {MAX_BATCHES} batches of reads"
        )

    def _revision_of(self, msg: Msg) -> int:
        return int((msg.headers or {}).get(SEQUENCE_HEADER) or 0)

    def _entry(self, msg: Msg) -> Entry:
        headers = msg.headers or {}
        subject = headers.get(SUBJECT_HEADER, "")
        key = subject[len(self._prefix) :] if subject.startswith(self._prefix) else subject
        return Entry(key, msg.data or b"", self._revision_of(msg), is_tombstone(headers))

    async def _replay(self, keys: str, *, history: bool) -> list[Entry]:
        """Read what the bucket holds for `keys` through a consumer (buckets without direct gets).

        Not nats-py's `KeyValue.watch()`: its end-of-replay marker compares the
        server's pending count with the messages the client has processed, so
        messages still in flight are missed and about 1 replay in 100 of a
        100-key bucket came back empty here (nats.py #842, fix pending in #995).
        Here the consumer's own count says how many messages the replay owes:
        those delivered (in flight or not) plus those pending when asked. The
        consumer goes on delivering what is written meanwhile, so a key may
        come more than once: callers keep the newest.
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
