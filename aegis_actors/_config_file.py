"""Supervisor config files: TOML in, frozen pydantic models out, errors that say where.

One file describes one process (docs/guides/fleets.md, docs/reference/config.md):

```toml
name = "trading"                 # the root supervisor's name (paths: /trading/...)
namespace = ""                   # prefix of subjects and buckets

[nats]                           # no url: start an embedded nats-server
url = "nats://127.0.0.1:4222"

[supervisor]
strategy = "one_for_one"
max_restarts = 3
within_seconds = 5.0

[events]                         # streams of durable events (docs/guides/events.md)
max_age = 604800                 # keep events 7 days
[events.domains.order]           # one domain's stream, over [events]
max_age = 2592000

[[services]]
class = "services.trading.order:OrderService"
instances = 2

[services.heartbeat]
ttl = 30
interval = 10

[services.settings]              # free-form, handed to the class
max_order_quantity = 1000

[web]                            # optional: serve the web monitor too
port = 8090

[metrics]                        # optional: Prometheus metrics on /metrics
port = 9464

[tracing]                        # optional: OpenTelemetry spans (the `otel` extra)
exporter = "otlp"
```

Every mistake is a `ConfigError` naming the file, the key and what was
expected (`config/x.toml: services[0].instances: Input should be greater
than or equal to 1 (got 0)`). Environment variables override the file:
see `ENV_OVERRIDES`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from aegis_actors._child_spec import Strategy
from aegis_actors._connection import NATS_ENV, ConnectionSettings, redact, split_urls
from aegis_actors._errors import ConfigError
from aegis_actors._events.settings import EventsSettings
from aegis_actors._service import ServiceActor
from aegis_actors._settings import InstanceSettings, ServiceSettings
from aegis_actors._subjects import check_namespace
from aegis_actors._telemetry.settings import MetricsSettings, TracingSettings
from aegis_actors._web.settings import WebSettings

#: Environment variable -> key path in the file it overrides (the `[nats]` ones
#: are those every client command reads too: `connection.NATS_ENV`).
ENV_OVERRIDES: Final[dict[str, tuple[str, ...]]] = {
    **{variable: ("nats", *path.split(".")) for variable, path in NATS_ENV.items()},
    "AEGIS_NAMESPACE": ("namespace",),
}
#: Fields of `[nats]` that say who connects: a service's own `[services.nats]`
#: replaces them all, so its credential never mixes with the fleet's.
CREDENTIAL_FIELDS: Final = ("user", "password", "token", "creds_file", "nkey_seed", "inbox_prefix")


class NatsSettings(ConnectionSettings):
    """Section `[nats]`: where NATS is; without `url`, `aegis run` starts one."""

    url: str | list[str] | None = Field(  # type: ignore[assignment]
        None,
        description="Server URL, or a list of URLs of one cluster (or one comma-separated "
        "string); omit to start an embedded nats-server.",
    )


class EmbeddedServerSettings(BaseModel):
    """Section `[embedded]`: the nats-server `aegis run` starts when `nats.url` is absent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = Field(4222, ge=0, le=65535, description="Client port; 0 picks a free one.")
    store_dir: Path | None = Field(
        None, description="JetStream folder; omitted = temporary, removed at exit."
    )
    auth: Path | None = Field(
        None,
        description="A nats-server config file to include, such as the authorization "
        "block `aegis auth` writes: the server then enforces the roles.",
    )


class SupervisorSettings(BaseModel):
    """Section `[supervisor]`: the root supervisor over one supervisor per service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = Field(
        Strategy.ONE_FOR_ONE, description="one_for_one, one_for_all or rest_for_one."
    )
    max_restarts: int = Field(3, ge=0, description="Restarts allowed within `within_seconds`.")
    within_seconds: float = Field(5.0, gt=0, description="Window of `max_restarts`.")


class ServiceCredentials(BaseModel):
    """`[services.nats]`: the service's own credential (one per service, least privilege)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    user: str | None = Field(None, description="User name (with `password`).")
    password: SecretStr | None = Field(None, description="Password for `user`.")
    token: SecretStr | None = Field(None, description="Authentication token.")
    creds_file: Path | None = Field(None, description="NATS credentials file (JWT + NKey seed).")
    nkey_seed: Path | None = Field(None, description="File holding the service's NKey seed.")
    inbox_prefix: str | None = Field(None, description="See `[nats]` `inbox_prefix`.")


class FleetServiceSettings(ServiceSettings):
    """One `[[services]]` entry: a class to run, how many instances, and their options."""

    class_path: str = Field(
        alias="class",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="The ServiceActor subclass to run, as `package.module:Class`.",
    )
    instances: int = Field(1, ge=1, le=1000, description="How many instances to run.")
    nats: ServiceCredentials | None = Field(
        None,
        description="This service's own credential, in place of the `[nats]` one "
        "(for example the NKey seed `aegis auth --nkeys` wrote for it).",
    )


class FleetSettings(BaseModel):
    """A whole config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        "fleet",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
        description="Name of the root supervisor (the first segment of actor paths).",
    )
    namespace: str = Field(
        "", description="Prefix of subjects and bucket names, to share a server between fleets."
    )
    nats: NatsSettings = Field(default_factory=NatsSettings, description="See `[nats]`.")
    embedded: EmbeddedServerSettings = Field(
        default_factory=EmbeddedServerSettings, description="See `[embedded]`."
    )
    supervisor: SupervisorSettings = Field(
        default_factory=SupervisorSettings, description="See `[supervisor]`."
    )
    events: EventsSettings = Field(default_factory=EventsSettings, description="See `[events]`.")
    services: list[FleetServiceSettings] = Field(
        min_length=1, description="The services to run (`[[services]]`)."
    )
    web: WebSettings | None = Field(
        None,
        description="See `[web]`: serve the web monitor from this process too (needs the "
        "`web` extra).",
    )
    metrics: MetricsSettings | None = Field(
        None,
        description="See `[metrics]`: serve Prometheus metrics on `/metrics` (needs the "
        "`metrics` extra).",
    )
    tracing: TracingSettings | None = Field(
        None,
        description="See `[tracing]`: make OpenTelemetry spans (needs the `otel` extra).",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_namespace(value)

    @property
    def embedded_server(self) -> bool:
        return self.nats.url is None


class LoadedService:
    """A service entry with its class imported and checked."""

    def __init__(self, config: FleetServiceSettings, cls: type[ServiceActor]) -> None:
        self.config = config
        self.cls = cls

    @property
    def name(self) -> str:
        return self.cls.service_name

    def instance_settings(
        self,
        nats: ConnectionSettings,
        namespace: str,
        events: EventsSettings | None = None,
    ) -> InstanceSettings:
        options = self.config.model_dump(exclude={"class_path", "instances", "nats"})
        own = self.config.nats
        if own is not None:
            # Its own credential replaces the fleet's whole: no mix of the two.
            data = nats.model_dump()
            data.update(dict.fromkeys(CREDENTIAL_FIELDS), **own.model_dump(exclude_none=True))
            nats = ConnectionSettings.model_validate(data)
        return InstanceSettings(
            **options, nats=nats, namespace=namespace, events=events or EventsSettings()
        )


class LoadedConfig:
    """A validated config file: the models, and every service class imported."""

    def __init__(self, path: Path, fleet: FleetSettings, services: list[LoadedService]) -> None:
        self.path = path
        self.fleet = fleet
        self.services = services

    def missing_files(self) -> list[str]:
        """The key files this config names that do not exist, each with its key.

        Not checked when the file is loaded: `aegis auth CONFIG` reads the
        config to write them.
        """
        named: list[tuple[str, Path | None]] = [("embedded.auth", self.fleet.embedded.auth)]
        for i, service in enumerate(self.services):
            own = service.config.nats
            if own is not None:
                named += [
                    (f"services[{i}].nats.creds_file", own.creds_file),
                    (f"services[{i}].nats.nkey_seed", own.nkey_seed),
                ]
        return [f"{path} ({key})" for key, path in named if path is not None and not path.is_file()]

    def with_metrics_port(self, port: int) -> LoadedConfig:
        """This config with `[metrics] port` set (the section added if missing).

        Raises:
            ConfigError: the `metrics` extra is not installed.
        """
        if not _metrics_installed():
            raise ConfigError("--metrics-port needs its extra: pip install 'aegis-actors[metrics]'")
        metrics = (self.fleet.metrics or MetricsSettings()).model_copy(update={"port": port})
        fleet = self.fleet.model_copy(update={"metrics": metrics})
        return LoadedConfig(self.path, fleet, self.services)

    def connection(self, url: str | None = None) -> ConnectionSettings:
        """The connection settings, with `url` filled in (for an embedded server)."""
        data = self.fleet.nats.model_dump()
        if url is not None:
            data["url"] = url
        return ConnectionSettings.model_validate(data)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, override from the environment, validate and import everything.

    Raises:
        ConfigError: naming the file, the key and what was expected.
    """
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    raw = apply_env(raw, os.environ if environ is None else environ)
    try:
        fleet = FleetSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(where, exc)) from None
    services = [_load_service(where, i, entry) for i, entry in enumerate(fleet.services)]
    if fleet.web is not None and importlib.util.find_spec("aiohttp") is None:
        raise ConfigError(
            f"{where}: [web] needs the web monitor's extra: pip install 'aegis-actors[web]'"
        )
    if fleet.metrics is not None and not all(
        importlib.util.find_spec(m) for m in ("prometheus_client", "aiohttp")
    ):
        raise ConfigError(
            f"{where}: [metrics] needs its extra: pip install 'aegis-actors[metrics]'"
        )
    if fleet.tracing is not None and importlib.util.find_spec("opentelemetry") is None:
        raise ConfigError(f"{where}: [tracing] needs its extra: pip install 'aegis-actors[otel]'")
    seen: dict[str, int] = {}
    for i, service in enumerate(services):
        if service.name in seen:
            raise ConfigError(
                f"{where}: services[{i}].class: service {service.name!r} is already run by "
                f"services[{seen[service.name]}]; use `instances` for more of it"
            )
        seen[service.name] = i
    return LoadedConfig(path, fleet, services)


def _metrics_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("prometheus_client", "aiohttp"))


def apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `raw` with `ENV_OVERRIDES` applied (a URL list is comma-separated).

    An override under a key the file holds as something other than a table
    (`nats = "nats://..."`) is not applied: validation then reports the file's
    mistake, as it does without the variable.

    Raises:
        ConfigError: `AEGIS_NATS_URL` holds commas or spaces but no URL.
    """
    result = dict(raw)
    for variable, keys in ENV_OVERRIDES.items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        target: Any = result
        for key in keys[:-1]:
            node = target.get(key, {})
            if not isinstance(node, dict):
                break
            target[key] = dict(node)  # a copy: `raw` stays as read
            target = target[key]
        else:
            target[keys[-1]] = _url_value(variable, value) if keys == ("nats", "url") else value
    return result


def _url_value(variable: str, value: str) -> list[str]:
    # ConnectionSettings makes a list of one URL a string; an empty one is
    # refused here, where the variable can be named.
    urls = split_urls(value)
    if not urls:
        raise ConfigError(f"{variable}: no URL in {value!r}")
    return urls


_SECRET_KEYS: Final = frozenset({"password", "token"})


def _describe(where: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        key = _key(error["loc"])
        got = error.get("input")
        shown = "" if error["type"] == "missing" or isinstance(got, dict) else f" (got {got!r})"
        if shown and error["loc"] and error["loc"][-1] in _SECRET_KEYS:
            shown = " (got ***)"  # never echo a secret, even a malformed one
        lines.append(redact(f"{where}: {key}: {error['msg']}{shown}"))
    return "\n".join(lines)


def _key(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def resolve_class(path: str) -> type[ServiceActor]:
    """Import `package.module:Class` and check it is a ServiceActor subclass.

    The current directory is importable, as for `python -m`, so a project's
    own `services/` package works without installing it.

    Raises:
        ConfigError: with what went wrong (no module, no class, not a ServiceActor).
    """
    module_name, _, class_name = path.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, ServiceActor)):
        raise ConfigError(f"{path} is not a ServiceActor subclass")
    if not hasattr(cls, "service_name"):
        raise ConfigError(f"{path} does not set service_name")
    return cls


def _load_service(where: str, index: int, entry: FleetServiceSettings) -> LoadedService:
    try:
        cls = resolve_class(entry.class_path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: services[{index}].class: {exc}") from exc
    if cls.Settings is not None:
        try:
            cls.Settings.model_validate(entry.settings)
        except ValidationError as exc:
            details = _describe(where, exc).replace(
                f"{where}: ", f"{where}: services[{index}].settings."
            )
            raise ConfigError(details) from None
        unknown = _unknown_settings(cls.Settings, entry.settings)
        if unknown:
            raise ConfigError(
                f"{where}: services[{index}].settings.{unknown[0]}: not a setting of "
                f"{cls.Settings.__name__} (its settings: "
                f"{', '.join(cls.Settings.model_fields) or 'none'})"
            )
    return LoadedService(entry, cls)


def _unknown_settings(model: type[BaseModel], settings: Mapping[str, Any]) -> list[str]:
    """Keys of `settings` that `model` would drop without a word (pydantic ignores
    extra keys by default): in a config file they are typos, which must not pass."""
    if model.model_config.get("extra") == "allow":
        return []
    known: set[str] = set()
    for name, field in model.model_fields.items():
        if field.validation_alias is not None and not isinstance(field.validation_alias, str):
            return []  # AliasPath / AliasChoices: cannot tell, so do not guess
        known.update(a for a in (name, field.alias, field.validation_alias) if isinstance(a, str))
    return [key for key in settings if key not in known]
