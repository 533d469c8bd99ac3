"""Running the runtime: on uvloop when it is installed, on plain asyncio otherwise."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def uvloop_available() -> bool:
    """True when the optional `uvloop` package (extra `aegis-actors[fast]`) is installed."""
    return importlib.util.find_spec("uvloop") is not None


def run(main: Callable[[], Awaitable[T]], *, use_uvloop: bool | None = None) -> T:
    """Run `main()` to completion on asyncio, on uvloop unless told otherwise.

    `use_uvloop=None` means "if installed".
    """
    use = uvloop_available() if use_uvloop is None else use_uvloop
    return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": use})


def loop_name() -> str:
    """`uvloop` or `asyncio`: what the running event loop is (for logs and benchmarks)."""
    import asyncio

    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
