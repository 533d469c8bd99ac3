"""`serve_metrics`: `/metrics` over HTTP, inside the runtime's event loop (aiohttp).

In the loop rather than prometheus-client's own server (a thread): the
collector reads the runtime's counters where they are written, with no
lock and no torn read, and the server is the aiohttp stack the web monitor
already runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from aiohttp import web
from prometheus_client import exposition

from aegis_actors._telemetry.metrics import enable_metrics

#: Seconds a stopping server gives a scrape in progress.
HTTP_SHUTDOWN: Final = 2.0


@asynccontextmanager
async def serve_metrics(host: str = "127.0.0.1", port: int = 9464) -> AsyncIterator[str]:
    """Switch metrics on and serve them on `http://{host}:{port}/metrics` while inside.

    Yields the URL (with the port chosen when `port` is 0).

    Raises:
        OSError: the port could not be bound.
    """
    registry = enable_metrics()

    async def scrape(request: web.Request) -> web.Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(registry))
        response.headers["Content-Type"] = content_type
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{shown}:{bound_port}/metrics"
    finally:
        await runner.cleanup()
