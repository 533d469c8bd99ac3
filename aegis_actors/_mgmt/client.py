"""`ManagementClient`: the management API from Python (the `aegis` CLI is built on it).

Any NATS client can drive the API (`nats req aegis.mgmt.services.get
'{"serviceName": "orders"}'`); this one adds the deadline header, turns error
replies into `ServiceError`s and parses answers into the API's models. Failures
before any reply become `ServiceError`s too: no `aegis-mgmt` instance
subscribed is 503 `SERVICE_UNAVAILABLE`, no answer in time is 504
`DEADLINE_EXCEEDED`, a subject our credentials may not use is 403
`PERMISSION_DENIED` (at once, on a connection made by `connect()`).

Example:

    client = ManagementClient(await connect(ConnectionSettings(url=url)))
    created = await client.create_service("orders", owner="team-a", version="1.0.0")
    await client.update_service("orders", created.revision, description="Takes orders")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json, to_json

from aegis_actors._configuration.models import Application, Configuration
from aegis_actors._configuration.requests import (
    ApplicationPage,
    ConfigurationHistoryPage,
    ConfigurationPage,
    ConfigurationRevision,
)
from aegis_actors._denials import guard
from aegis_actors._errors import (
    ErrorCode,
    NoRespondersError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServiceError,
)
from aegis_actors._mgmt.definitions import Versioned
from aegis_actors._mgmt.models import InstanceList, ServiceDefinition, ServicePage
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._subjects import Subjects
from aegis_actors._transport import NatsClient, transport_errors
from aegis_actors._wire import DEADLINE_HEADER, deadline_header, decode_reply

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    """A success reply: its status, `data`, KV `revision` (if any) and the bytes received."""

    status: int
    data: Any
    revision: int | None
    raw: bytes


class ManagementClient:
    """Requests to `aegis.mgmt.*` over one NATS connection (which the caller owns)."""

    def __init__(
        self, client: NatsClient, *, namespace: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Send requests over `client`.

        Args:
            client: a connected nats-py client (`nats.aio.client.Client`), not an
                aegis `Client`: pass `aegis_client.nats` (a started
                `aegis_actors.Client`'s connection) or the result of
                `await aegis_actors.connect(ConnectionSettings(url=...))`.
                The caller owns it: this object never closes it.
            namespace: the fleet's namespace (prefix of the `aegis.mgmt.*` subjects).
            timeout: seconds each request may take (sent as its `Aegis-Deadline`).
        """
        self.client = client
        self.subjects = Subjects(namespace)
        self.timeout = timeout

    async def request(
        self, resource: str, verb: str, params: Mapping[str, Any] | bytes = b"{}"
    ) -> Answer:
        """Send one request; return the success reply.

        Raises:
            ServiceError: the error reply; 503 / 504 when none came; 403 when
                the server's permissions refuse us the subject.
        """
        subject = self.subjects.mgmt(resource, verb)
        body = params if isinstance(params, bytes) else to_json(params)
        headers = {DEADLINE_HEADER: deadline_header(self.timeout)}
        try:
            async with guard(self.client, subject):
                with transport_errors(subject, timeout=self.timeout):
                    msg = await self.client.request(
                        subject, body, timeout=self.timeout, headers=headers
                    )
        except PermissionDeniedError as exc:
            raise ServiceError.denied(exc) from None
        except NoRespondersError:
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"no aegis-mgmt instance serves {subject} (is one running in this namespace?)",
                subject=subject,
            ) from None
        except RequestTimeoutError:
            raise ServiceError.of(
                ErrorCode.DEADLINE_EXCEEDED,
                f"no answer on {subject} within {self.timeout:g} s",
                subject=subject,
            ) from None
        return _answer(msg.data)

    # -- definitions ---------------------------------------------------------------

    async def create_service(
        self, service_name: str, *, owner: str, version: str, description: str = ""
    ) -> Versioned:
        answer = await self.request(
            "services",
            "create",
            {
                "serviceName": service_name,
                "owner": owner,
                "version": version,
                "description": description,
            },
        )
        return _versioned(answer)

    async def get_service(self, service_name: str) -> Versioned:
        return _versioned(await self.request("services", "get", {"serviceName": service_name}))

    async def list_services(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> ServicePage:
        """One page of definitions, sorted by name."""
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        answer = await self.request("services", "list", params)
        return ServicePage.model_validate(answer.data)

    async def all_services(
        self, *, page_size: int | None = None
    ) -> AsyncIterator[ServiceDefinition]:
        """Every definition, sorted by name, following the cursor page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_services(limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update_service(self, service_name: str, revision: int, **changes: str) -> Versioned:
        """Change `owner`, `description` or `version` of a definition still at `revision`."""
        answer = await self.request(
            "services",
            "update",
            {"serviceName": service_name, "revision": revision, **changes},
        )
        return _versioned(answer)

    async def delete_service(self, service_name: str, revision: int | None = None) -> None:
        params: dict[str, Any] = {"serviceName": service_name}
        if revision is not None:
            params["revision"] = revision
        await self.request("services", "delete", params)

    # -- instances -----------------------------------------------------------------

    async def list_instances(self, service_name: str | None = None) -> list[ServiceInstance]:
        params = {"serviceName": service_name} if service_name is not None else {}
        answer = await self.request("instances", "list", params)
        return InstanceList.model_validate(answer.data).items

    async def get_instance(self, instance_id: str) -> ServiceInstance:
        answer = await self.request("instances", "get", {"instanceId": instance_id})
        return ServiceInstance.model_validate(answer.data)

    # -- applications --------------------------------------------------------------

    async def create_application(self, name: str, *, comments: str = "") -> VersionedApplication:
        answer = await self.request("apps", "create", {"name": name, "comments": comments})
        return VersionedApplication(Application.model_validate(answer.data), _revision(answer))

    async def get_application(
        self, application_id: str | None = None, *, name: str | None = None
    ) -> VersionedApplication:
        """An application by id, or by `name=`, with its configuration ids."""
        answer = await self.request("apps", "get", _given(id=application_id, name=name))
        return VersionedApplication(Application.model_validate(answer.data), _revision(answer))

    async def list_applications(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> ApplicationPage:
        """One page of applications, sorted by name."""
        answer = await self.request("apps", "list", _given(limit=limit, cursor=cursor))
        return ApplicationPage.model_validate(answer.data)

    async def all_applications(self, *, page_size: int | None = None) -> AsyncIterator[Application]:
        """Every application, sorted by name, following the cursor page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_applications(limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update_application(
        self,
        application_id: str,
        revision: int,
        *,
        name: str | None = None,
        comments: str | None = None,
    ) -> VersionedApplication:
        """Rename or comment an application still at `revision`."""
        params = {"id": application_id, "revision": revision}
        answer = await self.request(
            "apps", "update", {**params, **_given(name=name, comments=comments)}
        )
        return VersionedApplication(Application.model_validate(answer.data), _revision(answer))

    async def delete_application(self, application_id: str, revision: int | None = None) -> None:
        """Delete an application and its configurations."""
        await self.request("apps", "delete", _given(id=application_id, revision=revision))

    # -- configurations --------------------------------------------------------------

    async def create_configuration(
        self, application_id: str, name: str, config: Mapping[str, Any], *, comments: str = ""
    ) -> VersionedConfiguration:
        params = {
            "applicationId": application_id,
            "name": name,
            "comments": comments,
            "config": config,
        }
        answer = await self.request("configs", "create", params)
        return VersionedConfiguration(Configuration.model_validate(answer.data), _revision(answer))

    async def get_configuration(
        self,
        configuration_id: str | None = None,
        *,
        application_id: str | None = None,
        name: str | None = None,
    ) -> VersionedConfiguration:
        """A configuration by id, or by `application_id=` and `name=`."""
        params = _given(id=configuration_id, applicationId=application_id, name=name)
        answer = await self.request("configs", "get", params)
        return VersionedConfiguration(Configuration.model_validate(answer.data), _revision(answer))

    async def list_configurations(
        self,
        application_id: str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ConfigurationPage:
        """One page of configurations (of one application, or of all), sorted by name."""
        params = _given(applicationId=application_id, limit=limit, cursor=cursor)
        answer = await self.request("configs", "list", params)
        return ConfigurationPage.model_validate(answer.data)

    async def all_configurations(
        self, application_id: str | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[Configuration]:
        """Every configuration (of one application, or of all), following the cursor."""
        cursor: str | None = None
        while True:
            page = await self.list_configurations(application_id, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update_configuration(
        self,
        configuration_id: str,
        revision: int,
        *,
        name: str | None = None,
        comments: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> VersionedConfiguration:
        """Change the name, comments or value of a configuration still at `revision`."""
        changes = _given(name=name, comments=comments, config=config)
        params = {"id": configuration_id, "revision": revision, **changes}
        answer = await self.request("configs", "update", params)
        return VersionedConfiguration(Configuration.model_validate(answer.data), _revision(answer))

    async def delete_configuration(
        self, configuration_id: str, revision: int | None = None
    ) -> None:
        await self.request("configs", "delete", _given(id=configuration_id, revision=revision))

    async def configuration_history(self, configuration_id: str) -> list[ConfigurationRevision]:
        """The last 10 revisions of a configuration, newest first."""
        answer = await self.request("configs", "history", {"id": configuration_id})
        return ConfigurationHistoryPage.model_validate(answer.data).items


@dataclass(frozen=True, slots=True)
class VersionedApplication:
    """An application and the KV revision it was read or written at."""

    application: Application
    revision: int


@dataclass(frozen=True, slots=True)
class VersionedConfiguration:
    """A configuration and the KV revision it was read or written at."""

    configuration: Configuration
    revision: int


def _given(**params: Any) -> dict[str, Any]:
    """The parameters that are not None: the API takes a missing field, and refuses null."""
    return {key: value for key, value in params.items() if value is not None}


def _revision(answer: Answer) -> int:
    if answer.revision is None:
        raise ServiceError.of(ErrorCode.INTERNAL, "the reply carries no revision")
    return answer.revision


def _answer(raw: bytes) -> Answer:
    try:
        reply = from_json(raw)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and reply.get("ok") is True:
        return Answer(int(reply.get("status", 200)), reply.get("data"), reply.get("revision"), raw)
    decode_reply(raw)  # raises the error reply (or says the reply is malformed)
    raise ServiceError.of(ErrorCode.INTERNAL, "reply is not an aegis envelope")


def _versioned(answer: Answer) -> Versioned:
    if answer.revision is None:
        raise ServiceError.of(ErrorCode.INTERNAL, "the reply carries no revision")
    return Versioned(ServiceDefinition.model_validate(answer.data), answer.revision)
