"""The monitor's HTTP side (aiohttp): pages, assets, the event stream, and the relay.

- `GET /`, `/services/{name}`, `/instances/{id}`, `/configurations[/...]`: the
  page (one HTML file; its script draws the view the URL names);
- `GET /static/{file}`: the page's script, styles and icon, from the package;
- `GET /api/events`: server-sent events, a snapshot of the fleet then every change;
- `POST /api/mgmt/{resource}/{verb}`: a management request, relayed to
  `aegis.mgmt.{resource}.{verb}`;
- `GET /api/stats/services/{name}`: `$SRV.STATS` of a service's instances, per endpoint;
- `GET /api/stats/instances/{id}`: `$SRV.STATS` and `$SRV.INFO` of one instance.

Defences, since a page on any other site can make a browser send requests
to a loopback port: when bound to loopback, a request must name a loopback
`Host` (a DNS-rebinding page names its own); a `POST` must carry
`Content-Type: application/json` (which a cross-site form cannot send
without a preflight we never approve) and, if the browser sends `Origin`, the
monitor's own. Every response forbids framing and scripts from elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import anyio
from aiohttp import web
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic_core import to_json

from aegis_actors._errors import ErrorCode
from aegis_actors._mgmt.models import INSTANCE_ID_PATTERN
from aegis_actors._subjects import SERVICE_NAME_RE
from aegis_actors._web.context import WebContext
from aegis_actors._web.fleet import CountInstances, Follow, Follower
from aegis_actors._web.probe import instance_stats
from aegis_actors._web.relay import MAX_BODY, Relay, Relayed, refusal
from aegis_actors._web.settings import LOOPBACK_HOSTS, WebSettings

#: A comment line this often keeps proxies from closing a quiet stream (seconds).
KEEPALIVE: Final = 15.0
#: Events written to a page in one go when many are waiting.
BATCH: Final = 512
PAGES: Final = (
    "/",
    "/services/{name}",
    "/instances/{instance_id}",
    "/configurations",
    "/configurations/{application_id}",
    "/configurations/{application_id}/{configuration_id}",
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of the package's `static` folder, read once."""
    assets = {}
    folder = importlib.resources.files("aegis_actors._web") / "static"
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _TYPES:
            body = item.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            assets[item.name] = Asset(body, _TYPES[suffix], etag)
    return assets


def _json(status: int, body: bytes) -> web.Response:
    # 204 has no body in HTTP: the page still gets the envelope, with 200.
    return web.Response(
        status=200 if status == 204 else status, body=body, content_type="application/json"
    )


def _refused(relayed: Relayed) -> web.Response:
    return _json(relayed.status, relayed.body)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(ctx: WebContext, settings: WebSettings, *, timeout: float) -> web.Application:
    """The monitor's aiohttp application over `ctx` (started actors fill it in)."""
    assets = load_assets()
    relay = Relay(ctx, timeout=timeout)
    streams: set[MemoryObjectReceiveStream[bytes]] = set()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if settings.loopback and request.url.host not in LOOPBACK_HOSTS:
            response: web.StreamResponse = web.Response(
                status=421, text="this monitor answers on a loopback name only\n"
            )
        elif request.method == "POST" and not _same_origin_json(request):
            response = _refused(
                refusal(ErrorCode.BAD_REQUEST, "a JSON request from the monitor's own page only")
            )
        else:
            response = await handler(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def page(request: web.Request) -> web.Response:
        return _asset(request, assets["index.html"])

    async def static(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["file"])
        if asset is None or asset.content_type.startswith("text/html"):
            raise web.HTTPNotFound()
        return _asset(request, asset)

    async def events(request: web.Request) -> web.StreamResponse:
        if ctx.fleet is None:
            return _refused(refusal(ErrorCode.SERVICE_UNAVAILABLE, "the monitor is starting"))
        follower: Follower = await ctx.fleet.ask(Follow())
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy (nginx) must not hold events back
            }
        )
        frames = follower.frames
        streams.add(frames)
        try:
            await response.prepare(request)
            await response.write(follower.snapshot)
            await _stream(response, frames)
        except (ConnectionResetError, anyio.EndOfStream, anyio.ClosedResourceError):
            pass  # the page went away, or the monitor dropped or stopped it
        finally:
            streams.discard(frames)
            frames.close()
        return response

    async def mgmt(request: web.Request) -> web.Response:
        raw = await request.read()
        relayed = await relay.send(request.match_info["resource"], request.match_info["verb"], raw)
        return _json(relayed.status, relayed.body)

    async def service_stats(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not SERVICE_NAME_RE.fullmatch(name):
            return _refused(refusal(ErrorCode.BAD_REQUEST, "not a service name", value=name))
        expected = await ctx.fleet.ask(CountInstances(name)) if ctx.fleet else None
        found = await instance_stats(ctx.connection, name, None, expected or None)
        return _stats(found)

    async def one_instance_stats(request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        match = INSTANCE_ID_PATTERN.fullmatch(instance_id)
        if match is None:
            return _refused(refusal(ErrorCode.BAD_REQUEST, "not an instance id", value=instance_id))
        found = await instance_stats(ctx.connection, match.group(1), instance_id, 1)
        return _stats(found)

    async def close_streams(app: web.Application) -> None:
        for stream in list(streams):
            stream.close()

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY + 1024)
    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get("/static/{file}", static)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/mgmt/{resource}/{verb}", mgmt)
    app.router.add_get("/api/stats/services/{name}", service_stats)
    app.router.add_get("/api/stats/instances/{instance_id}", one_instance_stats)
    app.on_shutdown.append(close_streams)
    return app


def _same_origin_json(request: web.Request) -> bool:
    if request.content_type != "application/json":
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _asset(request: web.Request, asset: Asset) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


def _stats(found: list[dict[str, object]]) -> web.Response:
    body = to_json({"at": time.time() * 1000, "instances": found})
    return web.Response(body=body, content_type="application/json")


async def _stream(response: web.StreamResponse, frames: MemoryObjectReceiveStream[bytes]) -> None:
    """Write events as they come, many at once when many wait; a comment when quiet."""
    while True:
        batch: list[bytes] = []
        with anyio.move_on_after(KEEPALIVE):
            batch.append(await frames.receive())
            while len(batch) < BATCH:
                try:
                    batch.append(frames.receive_nowait())
                except anyio.WouldBlock:
                    break
        await response.write(b"".join(batch) if batch else b": keep-alive\n\n")
