"""A headless Chromium for the web monitor's browser tests (Playwright drives Debian's).

Playwright's own browser builds are not downloaded: it launches the system's
`chromium` (`make browser` installs it as root). Without one, the browser
tests are skipped with one message saying how to get it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from playwright.async_api import Browser

ROOT: Final = Path(__file__).resolve().parent.parent
#: Screenshots of every page the tests visit (git-ignored; CI may keep them).
ARTIFACTS: Final = ROOT / "test-artifacts" / "web"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """`$AEGIS_CHROMIUM`, else `chromium` (or `chromium-browser`) on the PATH."""
    configured = os.environ.get("AEGIS_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


def why_no_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "no playwright: `make install` installs it (the dev extra)"
    if find_chromium() is None:
        return "no Chromium: `make browser` installs it as root (apt-get install chromium)"
    return None


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
