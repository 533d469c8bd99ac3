"""The NATS connection: settings, connecting, and the `ConnectionActor` that owns it.

Once connected, the client reconnects forever, waiting an exponential backoff
with jitter between attempts, and every disconnect and reconnect is logged.
The first connection is different: it is retried only for
`initial_connect_timeout`, after which `NatsUnavailableError` says which
servers could not be reached, so a mistyped URL fails fast instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from aegis_actors._actor import Actor
from aegis_actors._backoff import Backoff
from aegis_actors._child_spec import ChildSpec, Restart
from aegis_actors._denials import report_error, watch_denials
from aegis_actors._errors import NatsUnavailableError
from aegis_actors._ref import ActorRef
from aegis_actors._transport import (
    JetStreamContext,
    Msg,
    NatsClient,
    close_subscriptions,
    refuses_credentials,
)

log = structlog.get_logger("aegis_actors.connection")

#: Environment variable -> `ConnectionSettings` field (a dotted path for TLS):
#: read by `aegis run` (over the config file) and by every client command.
NATS_ENV: Final[dict[str, str]] = {
    "AEGIS_NATS_URL": "url",
    "AEGIS_NATS_USER": "user",
    "AEGIS_NATS_PASSWORD": "password",
    "AEGIS_NATS_TOKEN": "token",
    "AEGIS_NATS_CREDS_FILE": "creds_file",
    "AEGIS_NATS_NKEY_SEED": "nkey_seed",
    "AEGIS_NATS_INBOX_PREFIX": "inbox_prefix",
    "AEGIS_NATS_CA_FILE": "tls.ca_file",
    "AEGIS_NATS_CERT_FILE": "tls.cert_file",
    "AEGIS_NATS_KEY_FILE": "tls.key_file",
}
#: The userinfo of a URL in any text: `nats://user:password@` or `nats://token@`.
_USERINFO: Final = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^@/\s,]*)@")
_TOKEN: Final = re.compile(r"^[^.*>\s]+$")
DEFAULT_INBOX_PREFIX: Final = "_INBOX"


def redact(text: str) -> str:
    """`text` with the password or token of every URL in it replaced by `***`.

    `nats://admin:s3cret@host` -> `nats://admin:***@host`; `nats://tok@host`
    (a token) -> `nats://***@host`. Every URL shown or logged goes through it.
    """

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match["info"].partition(":")
        return f"{match['scheme']}{user + ':***' if colon else '***'}@"

    return _USERINFO.sub(hide, text)


class TlsSettings(BaseModel):
    """TLS towards the NATS servers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_file: Path | None = Field(None, description="CA bundle that signs the server certificates.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    hostname: str | None = Field(None, description="Server name to verify, if not the URL's host.")
    handshake_first: bool = Field(
        False, description="TLS before the NATS INFO exchange (server `handshake_first`)."
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        return self

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file and self.key_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class ConnectionSettings(BaseModel):
    """Where NATS is and how to authenticate; section `[nats]` of a config file."""

    # Errors never echo the input: it holds passwords and tokens.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str | list[str] = Field(
        "nats://127.0.0.1:4222",
        description="Server URL, or a list of URLs of one cluster (or one comma-separated string).",
    )
    name: str | None = Field(None, description="Connection name shown by `nats server report`.")
    user: str | None = Field(None, description="User name (with `password`).")
    password: SecretStr | None = Field(None, description="Password for `user`.")
    token: SecretStr | None = Field(None, description="Authentication token.")
    creds_file: Path | None = Field(None, description="NATS credentials file (JWT + NKey seed).")
    nkey_seed: Path | None = Field(
        None, description="File holding an NKey seed (`SU...`): a user known by its public key."
    )
    inbox_prefix: str | None = Field(
        None,
        description="Prefix of this connection's reply subjects; default `_INBOX.{identity}` "
        "(the user name, or the public key of `nkey_seed` / `creds_file`), else `_INBOX`: "
        "the private inbox that `aegis auth` permissions allow.",
    )
    tls: TlsSettings | None = Field(None, description="TLS settings; `tls://` URLs need it.")
    connect_timeout: float = Field(2.0, gt=0, description="Seconds for one connection attempt.")
    initial_connect_timeout: float = Field(
        10.0, gt=0, description="Seconds to keep retrying the first connection before giving up."
    )
    reconnect_wait_min: float = Field(
        0.1, ge=0, description="First wait between reconnect attempts (doubles each attempt)."
    )
    reconnect_wait_max: float = Field(5.0, ge=0, description="Longest wait between attempts.")
    ping_interval: float = Field(
        10.0, gt=0, description="Seconds between client pings; 3 unanswered = disconnected."
    )
    drain_timeout: float = Field(5.0, gt=0, description="Seconds to drain on a graceful stop.")

    @field_validator("url")
    @classmethod
    def _urls(cls, url: str | list[str] | None) -> str | list[str] | None:
        # "a,b" in a file is the same as AEGIS_NATS_URL=a,b: two servers, and
        # a blank entry is a slip; nats-py would refuse either at connect time.
        if url is None:  # a config file's `[nats]` without `url`: embedded server
            return None
        urls = split_urls(url) if isinstance(url, str) else [u.strip() for u in url if u.strip()]
        if not urls:
            raise ValueError("needs at least one NATS server URL")
        return urls[0] if len(urls) == 1 else urls

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> ConnectionSettings:
        if self.password is not None and self.user is None:
            raise ValueError("password needs user")
        ways = [
            self.user is not None,
            self.token is not None,
            self.creds_file is not None,
            self.nkey_seed is not None,
        ]
        if sum(ways) > 1:
            raise ValueError(
                "give one of user/password, token, creds_file or nkey_seed, not several"
            )
        for name in ("creds_file", "nkey_seed"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} does not exist")
        if self.inbox_prefix is not None and not all(
            _TOKEN.fullmatch(t) for t in self.inbox_prefix.split(".")
        ):
            raise ValueError(
                f"inbox_prefix {self.inbox_prefix!r} must be a subject without wildcards"
            )
        if self.reconnect_wait_max < self.reconnect_wait_min:
            raise ValueError("reconnect_wait_max must be >= reconnect_wait_min")
        return self

    def __repr_args__(self) -> Any:
        # A URL may carry a password or token (`nats://admin:pw@host`): never shown.
        for name, value in super().__repr_args__():
            if name == "url" and value is not None:
                value = redact(value) if isinstance(value, str) else [redact(u) for u in value]
            yield name, value

    @property
    def servers(self) -> list[str]:
        return [self.url] if isinstance(self.url, str) else list(self.url)

    @property
    def shown_servers(self) -> str:
        """The servers, comma-separated, with any password or token redacted."""
        return redact(", ".join(self.servers))

    def identity(self) -> str:
        """Who these settings connect as, for messages: `user admin`, `nkey UABC...`,
        `creds UABC... (app.creds)`, `token`, or `no credentials`. Never a secret."""
        user = self.user or self._url_user()
        if user is not None:
            return f"user {user}"
        name = self._identity_name()
        if self.nkey_seed is not None:
            return f"nkey {name} ({self.nkey_seed.name})" if name else f"nkey {self.nkey_seed}"
        if self.creds_file is not None:
            return f"creds {name} ({self.creds_file.name})" if name else f"creds {self.creds_file}"
        if self.token is not None or self._url_token():
            return "token"
        return "no credentials"

    def inbox(self) -> str:
        """The reply subject prefix: `inbox_prefix`, else `_INBOX.{identity}` (see the field)."""
        if self.inbox_prefix is not None:
            return self.inbox_prefix
        name = self._identity_name()
        return f"{DEFAULT_INBOX_PREFIX}.{name}" if name else DEFAULT_INBOX_PREFIX

    def _identity_name(self) -> str | None:
        """The user name, or the public key of the NKey; None if unknown or not a token."""
        name = self.user or self._url_user()
        if name is None and self.nkey_seed is not None:
            name = nkey_public_key(self.nkey_seed.read_text().strip())
        if name is None and self.creds_file is not None:
            name = creds_public_key(self.creds_file.read_text())
        return name if name and _TOKEN.fullmatch(name) else None

    def _url_user(self) -> str | None:
        for url in self.servers:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            if parts.password is not None and parts.username:
                return parts.username
        return None

    def _url_token(self) -> bool:
        return any(urlsplit(u).username and urlsplit(u).password is None for u in self.servers)

    def reconnect_backoff(self) -> Backoff:
        return Backoff(base=self.reconnect_wait_min, cap=self.reconnect_wait_max)


def nkey_public_key(seed: str) -> str | None:
    """The public key (`U...`) of an NKey seed (`SU...`); None if it is not one."""
    import nkeys  # installed with nats-py[nkeys]; imported only where NKeys are used

    try:
        return str(nkeys.from_seed(seed.encode()).public_key.decode())
    except Exception:
        return None


def creds_public_key(creds: str) -> str | None:
    """The user's public key (the JWT's `sub`) in the text of a `.creds` file, or None."""
    for line in creds.splitlines():
        parts = line.strip().split(".")
        if len(parts) == 3 and line.strip().startswith("ey"):
            try:
                padded = parts[1] + "=" * (-len(parts[1]) % 4)
                claims = json.loads(base64.urlsafe_b64decode(padded))
            except ValueError:
                return None
            sub = claims.get("sub") if isinstance(claims, dict) else None
            return sub if isinstance(sub, str) else None
    return None


def split_urls(text: str) -> list[str]:
    """The URLs in comma-separated `text` (`--url`, `AEGIS_NATS_URL`), blanks dropped.

    `"nats://a:4222, "` is one URL: a trailing comma is a slip, not a second server.
    """
    return [url.strip() for url in text.split(",") if url.strip()]


Hook = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


def next_server_to_try(servers: Sequence[Any], backoff: Backoff) -> tuple[Any, float]:
    """The server of the pool to reconnect to, and how long to wait first.

    The one tried the fewest times since it last worked, so every server of a
    cluster gets its turn: left to choose (None), nats-py takes the first of
    its pool every time, and a client whose first server died stayed on it
    for good while the rest of the cluster was up. The wait grows with that
    server's failed attempts: a new outage tries each server after the shortest
    wait before it waits longer for any.
    """
    if not servers:
        return None, backoff.delay(0)
    server = min(servers, key=lambda s: s.reconnects)
    return server, backoff.delay(server.reconnects)


async def connect(
    settings: ConnectionSettings,
    *,
    on_disconnected: Hook = _nothing,
    on_reconnected: Hook = _nothing,
    on_closed: Hook | None = None,
) -> NatsClient:
    """Connect with `settings`; retried until `initial_connect_timeout`.

    The hooks are awaited (after logging) when the client loses its server,
    gets one back, and closes for good.

    Raises:
        NatsUnavailableError: no server could be reached in time.
    """
    backoff = settings.reconnect_backoff()
    last_error: list[BaseException] = []
    first_connect, gave_up = True, False

    async def on_error(error: Exception) -> None:
        if report_error(client, error):
            return  # a permissions violation: told to whoever used the subject, and logged
        if gave_up:
            return  # the socket of a refused connect, closing: said already
        last_error[:] = [error]
        if first_connect and refuses_credentials(error):
            # Trying again would only be refused again: say so now, not at the timeout
            # (nats-py's first connect awaits this callback, and stops on its exception).
            raise _Refused(error)
        # Until the first connection, a failed attempt is retried and the
        # final failure says why (NatsUnavailableError): no line per attempt.
        (log.debug if first_connect else log.warning)("nats error", error=redact(repr(error)))

    async def disconnected() -> None:
        if client.is_closed:
            return  # our own close or drain, not an outage
        log.warning("nats disconnected")
        await on_disconnected()

    async def reconnected() -> None:
        log.info("nats reconnected", url=connected_url(client))
        await on_reconnected()

    def next_server(servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        return next_server_to_try(servers, backoff)

    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": settings.name,
        "connect_timeout": settings.connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_to_server_handler": next_server,
        "ping_interval": settings.ping_interval,
        "max_outstanding_pings": 3,
        "drain_timeout": settings.drain_timeout,
        "error_cb": on_error,
        "inbox_prefix": settings.inbox(),
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
    }
    if on_closed is not None:
        options["closed_cb"] = on_closed
    if settings.user is not None:
        options["user"] = settings.user
        if settings.password is not None:
            options["password"] = settings.password.get_secret_value()
    if settings.token is not None:
        options["token"] = settings.token.get_secret_value()
    if settings.creds_file is not None:
        options["user_credentials"] = str(settings.creds_file)
    if settings.nkey_seed is not None:
        options["nkeys_seed"] = str(settings.nkey_seed)
    if settings.tls is not None:
        options["tls"] = settings.tls.context()
        options["tls_hostname"] = settings.tls.hostname
        options["tls_handshake_first"] = settings.tls.handshake_first

    client = NatsClient()
    identity = settings.identity()
    watch_denials(client, identity)
    try:
        with anyio.fail_after(settings.initial_connect_timeout):
            await client.connect(**options)
    except _Refused as refused:
        gave_up = True
        await _close_quietly(client)
        raise NatsUnavailableError(
            redact(f"NATS at {settings.shown_servers} refused {identity}: {refused.error!r}")
        ) from refused.error
    except TimeoutError:
        await _close_quietly(client)
        reason = f": {last_error[0]!r}" if last_error else ""
        raise NatsUnavailableError(
            redact(
                f"cannot reach NATS at {settings.shown_servers} within "
                f"{settings.initial_connect_timeout:g} s{reason}"
            )
        ) from (last_error[0] if last_error else None)
    except Exception as exc:
        await _close_quietly(client)
        raise NatsUnavailableError(
            redact(f"cannot connect to NATS at {settings.shown_servers} as {identity}: {exc!r}")
        ) from exc
    first_connect = False
    log.info("nats connected", url=connected_url(client), identity=identity)
    return client


def connected_url(client: NatsClient) -> str:
    """The URL `client` is connected to, its password or token redacted ("" if none)."""
    return redact(client.connected_url.geturl()) if client.connected_url else ""


class _Refused(Exception):
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def barrier(client: NatsClient, timeout: float = 5.0) -> None:
    """Return once the server has processed every command `client` sent before the call.

    nats-py's `Client.flush()` is not such a barrier in nats-py 2.16: it writes its PING
    straight to the socket while earlier SUBs may still sit in the client's
    pending buffer, so the PONG can come back before the server knows the
    subscriptions (seen here: 1 start in ~100 missed its first messages).
    A message to ourselves travels behind everything queued before it.
    """
    arrived = asyncio.get_running_loop().create_future()

    async def on_message(msg: Msg) -> None:
        if not arrived.done():
            arrived.set_result(None)

    inbox = client.new_inbox()
    sub = await client.subscribe(inbox, cb=on_message, max_msgs=1)
    try:
        await client.publish(inbox, b"")
        with anyio.fail_after(timeout):
            await arrived
    finally:
        await close_subscriptions([sub])


async def _close_quietly(client: NatsClient) -> None:
    try:
        await client.close()
    except Exception as exc:  # already broken; the caller reports the real cause
        log.debug("close after failed connect", error=repr(exc))


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Answer to `GetStatus`."""

    connected: bool
    url: str | None
    reconnects: int
    in_msgs: int
    out_msgs: int


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Ask a `ConnectionActor` for its `ConnectionStatus`."""


@dataclass(frozen=True, slots=True)
class WatchConnection:
    """Ask a `ConnectionActor` to send `ref` a `ConnectionChanged` at every change."""

    ref: ActorRef


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The connection was lost (`connected=False`) or is back (`connected=True`).

    After a reconnect, subscriptions are restored by the client, but anything
    published while disconnected may be lost: watchers of KV state resync.
    """

    connected: bool


@dataclass(frozen=True, slots=True)
class _ConnectionClosed:
    pass


class Connection:
    """The NATS connection of one actor tree, as its `ConnectionActor` last made it.

    The connection actor is the one writer (`connection_child` hands it
    `set`); its siblings start after it (a supervisor starts children in
    order) and read `client`, and `actor` to ask for `ConnectionChanged`.
    A tree rebuilt after the connection died gets a new `Connection`.
    """

    __slots__ = ("_client", "_js", "actor", "owner")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        """Whose connection it is (an instance or client id), for error messages."""
        self.actor: ActorRef | None = None
        self._client: NatsClient | None = None
        self._js: tuple[float, JetStreamContext] | None = None

    @property
    def client(self) -> NatsClient:
        """The connected client.

        Raises:
            NatsUnavailableError: the connection actor has not connected yet.
        """
        client = self._client
        if client is None:
            raise NatsUnavailableError(f"{self.owner} has no NATS connection yet")
        return client

    def jetstream(self, timeout: float) -> JetStreamContext:
        """A JetStream context on `client` whose requests wait `timeout` seconds."""
        js = self._js
        if js is None or js[0] != timeout:
            js = self._js = (timeout, self.client.jetstream(timeout=timeout))
        return js[1]

    def set(self, client: NatsClient, actor: ActorRef) -> None:
        """Called by the connection actor (only) with its fresh client and its own ref."""
        self._client, self._js, self.actor = client, None, actor


class ConnectionActor(Actor):
    """Owns one NATS connection for the actors of an instance.

    Siblings take `connection` after this actor has started (a supervisor
    starts children in order). If the client closes for good, the actor
    crashes, so that its supervisor can rebuild what depended on it.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        on_connected: Callable[[NatsClient, ActorRef], None] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._on_connected = on_connected
        self._client: NatsClient | None = None
        self._stopping = False
        self._watchers: list[ActorRef] = []

    @property
    def connection(self) -> NatsClient:
        if self._client is None:
            raise NatsUnavailableError("the connection actor has not connected yet")
        return self._client

    async def on_start(self) -> None:
        ref = self.actor_ref

        async def on_closed() -> None:
            if not self._stopping:
                ref.send_system(_ConnectionClosed())

        async def on_disconnected() -> None:
            self._notify(connected=False)

        async def on_reconnected() -> None:
            self._notify(connected=True)

        self._client = await connect(
            self.settings,
            on_disconnected=on_disconnected,
            on_reconnected=on_reconnected,
            on_closed=on_closed,
        )
        if self._on_connected is not None:
            self._on_connected(self._client, self.actor_ref)

    def _notify(self, *, connected: bool) -> None:
        # System lane: a change must never wait behind a watcher's backlog.
        for watcher in self._watchers:
            watcher.send_system(ConnectionChanged(connected))

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetStatus):
            client = self.connection
            return ConnectionStatus(
                connected=client.is_connected,
                url=connected_url(client) or None,
                reconnects=int(client.stats["reconnects"]),
                in_msgs=int(client.stats["in_msgs"]),
                out_msgs=int(client.stats["out_msgs"]),
            )
        if isinstance(message, WatchConnection):
            if message.ref not in self._watchers:
                self._watchers.append(message.ref)
            return None
        if isinstance(message, _ConnectionClosed):
            raise NatsUnavailableError("the NATS connection closed for good")
        return await super().on_receive(message)

    async def on_stop(self) -> None:
        self._stopping = True
        client, self._client = self._client, None
        if client is None or client.is_closed:
            return
        try:
            with anyio.move_on_after(self.settings.drain_timeout):
                await client.drain()
        except Exception as exc:
            log.warning("drain failed", error=repr(exc))
        if not client.is_closed:
            await client.close()


def connection_child(settings: ConnectionSettings, connection: Connection) -> ChildSpec:
    """The `connection` child of a tree whose actors all use one client: it writes `connection`.

    Temporary and significant: with `auto_shutdown=any_significant` its loss
    stops the whole tree, which its parent rebuilds on a new connection,
    rather than leaving siblings on a dead client.
    """
    return ChildSpec(
        "connection",
        lambda: ConnectionActor(settings, on_connected=connection.set),
        restart=Restart.TEMPORARY,
        significant=True,
        shutdown=settings.drain_timeout + 1.0,
    )
