"""The web monitor in a real browser (headless Chromium) against a real fleet.

One fleet (a nats-server with an admin and a viewer user, the management
service, five instances of three services, and a monitor for each user) and
one browser serve the whole module; each test gets a fresh browser context.
A screenshot of every page visited lands in `test-artifacts/web/`.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import pytest_asyncio
from anyio.abc import Process

from aegis_actors import InstanceStatus, ServiceError
from aegis_actors._client import Client
from aegis_actors._connection import ConnectionSettings, connect
from aegis_actors._mgmt.client import ManagementClient
from aegis_actors._nats_server import NatsServer
from aegis_actors._web.monitor import open_monitor
from aegis_actors._web.settings import WebSettings
from tests.browser_support import ARTIFACTS, chromium, why_no_browser
from tests.web_support import WebFleet, in_own_task, web_fleet

pytestmark = [
    pytest.mark.nats,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(why_no_browser() is not None, reason=f"browser tests: {why_no_browser()}"),
    pytest.mark.timeout(90),
]

if why_no_browser() is None:
    from playwright.async_api import Browser, Page, expect

    expect.set_options(timeout=10_000)

VICTIM = Path(__file__).parent / "instance_process.py"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet() -> AsyncIterator[WebFleet]:
    async with in_own_task(web_fleet) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with in_own_task(chromium) as running:
        yield running


async def open_page(browser: Browser, width: int = 1280, height: int = 900) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # An error reply (422, 409...) is an HTTP error status, which Chromium logs: not a fault.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    return context, page, errors


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context, page, errors = await open_page(browser)
    yield page
    await context.close()
    assert not errors, f"the page reported errors: {errors}"


@pytest_asyncio.fixture(loop_scope="module")
async def mgmt(fleet: WebFleet) -> AsyncIterator[ManagementClient]:
    client = await connect(ConnectionSettings(url=fleet.admin_url))
    try:
        yield ManagementClient(client)
    finally:
        await client.close()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def victim(url: str) -> tuple[Process, str]:
    """An instance of `victim` in its own process (TTL 2 s), and its instance id."""
    command = [sys.executable, str(VICTIM), url, "", "2", "0.5"]
    process = await anyio.open_process(command)
    assert process.stdout is not None
    with anyio.fail_after(20):
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive(1)
    return process, line.decode().strip()


async def stop(process: Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()


class TestFleetView:
    """Cards grouped by service show what the registry holds, and follow it live."""

    async def test_cards_match_the_registry(
        self, fleet: WebFleet, page: Page, mgmt: ManagementClient
    ) -> None:
        await page.goto(fleet.admin.url)
        records = await mgmt.list_instances()
        await expect(page.locator("article.card")).to_have_count(len(records))
        for record in records:
            card = page.locator(f'li[data-instance="{record.instance_id}"]')
            await expect(card.locator("h3")).to_have_text(record.instance_id)
            await expect(card.locator(".badge")).to_have_text(record.status.value)
            await expect(card).to_contain_text(record.version)
            section = page.locator(f'section[data-service="{record.service_name}"]')
            await expect(
                section.locator(f'li[data-instance="{record.instance_id}"]')
            ).to_have_count(1)
            if record.status is InstanceStatus.ACTIVE and record.sticky_active_group:
                await expect(card).to_contain_text(
                    f"group main · fencing revision {record.leadership_revision}"
                )
        colours = {
            status: await page.locator(f".badge-{status}").first.evaluate(
                "e => getComputedStyle(e).color"
            )
            for status in ("active", "unhealthy", "standby")
        }
        assert colours == {
            "active": "rgb(26, 127, 55)",  # green
            "unhealthy": "rgb(180, 35, 24)",  # red
            "standby": "rgb(75, 85, 99)",  # grey
        }
        await shot(page, "fleet")

    async def test_a_killed_instance_leaves_and_a_new_one_appears_without_reload(
        self, fleet: WebFleet, page: Page
    ) -> None:
        await page.goto(fleet.admin.url)
        await expect(page.locator("article.card").first).to_be_visible()
        await page.evaluate("window.sameDocument = true")
        process, first = await victim(fleet.admin_url)
        card = page.locator(f'li[data-instance="{first}"]')
        try:
            await expect(card).to_be_visible()
            process.kill()  # SIGKILL: no deregistration, the key has to expire
            # The heartbeat age keeps ticking on the page while the key lives on.
            # (checked at every frame: the text changes once a second, for about a second)
            await page.wait_for_function(
                """id => /^[1-9][0-9]*s ago$/.test(
                    document.querySelector(`li[data-instance="${id}"] .age`)?.textContent)""",
                arg=first,
                timeout=10_000,
            )
            await expect(card).to_have_count(0)
        finally:
            await stop(process)
        process, second = await victim(fleet.admin_url)
        try:
            await expect(page.locator(f'li[data-instance="{second}"]')).to_be_visible()
        finally:
            await stop(process)
        await expect(page.locator(f'li[data-instance="{second}"]')).to_have_count(0)
        assert await page.evaluate("window.sameDocument") is True  # never reloaded

    async def test_the_fleet_reads_at_390_px_and_works_from_the_keyboard(
        self, fleet: WebFleet, browser: Browser
    ) -> None:
        context, page, errors = await open_page(browser, 390, 844)
        try:
            await page.goto(fleet.admin.url)
            await expect(page.locator("article.card").first).to_be_visible()
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            await shot(page, "fleet-390px")
            for _ in range(10):  # skip link, brand, Fleet, Configurations, the button
                await page.keyboard.press("Tab")
                if await page.evaluate("document.activeElement.textContent") == (
                    "New service definition"
                ):
                    break
            await page.keyboard.press("Enter")
            dialog = page.get_by_role("dialog")
            await expect(dialog).to_be_visible()
            await expect(dialog.get_by_label("Service name")).to_be_focused()
            await page.keyboard.press("Escape")
            await expect(dialog).to_have_count(0)
            await page.goto(fleet.admin.url + "services/quote")
            await expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            await shot(page, "service-390px")
        finally:
            await context.close()
        assert not errors


class TestDefinitions:
    """Definitions are created, edited and deleted through labelled forms."""

    async def test_create_edit_conflict_and_delete(
        self, fleet: WebFleet, page: Page, mgmt: ManagementClient
    ) -> None:
        await page.goto(fleet.admin.url)
        await page.get_by_role("button", name="New service definition").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("Service name").fill("orders")
        await dialog.get_by_label("Owner").fill("trading-desk")
        await dialog.get_by_label("Version").fill("1.0")
        await dialog.get_by_label("Description").fill("Takes orders")
        await dialog.get_by_role("button", name="Create definition").click()

        # The API's 422 names `version`: the message sits in that field, under its input.
        version = dialog.get_by_label("Version")
        await expect(version).to_have_attribute("aria-invalid", "true")
        beside = dialog.locator(".field", has=page.get_by_label("Version")).locator(".field-error")
        await expect(beside).to_contain_text("MAJOR.MINOR.PATCH")
        owner = dialog.locator(".field", has=page.get_by_label("Owner"))
        await expect(owner.locator(".field-error")).to_be_hidden()
        await shot(page, "definition-422")
        await version.fill("1.0.0")
        await dialog.get_by_role("button", name="Create definition").click()
        await expect(page).to_have_url(fleet.admin.url + "services/orders")
        panel = page.locator("section", has=page.locator("#definition-heading"))
        await expect(panel).to_contain_text("trading-desk")

        await page.get_by_role("button", name="Edit definition").click()
        await page.get_by_label("Owner").fill("desk-two")
        await page.get_by_role("button", name="Save changes").click()
        await expect(panel.locator("dl")).to_contain_text("desk-two")

        # A stale edit: someone else saves while the form is open.
        await page.get_by_role("button", name="Edit definition").click()
        await page.get_by_label("Owner").fill("mine")
        current = await mgmt.get_service("orders")
        await mgmt.update_service("orders", current.revision, owner="someone-else")
        await page.get_by_role("button", name="Save changes").click()
        conflict = page.locator(".conflict")
        await expect(conflict).to_contain_text("Someone else changed this definition")
        await expect(conflict).to_contain_text("someone-else")
        await shot(page, "definition-conflict")
        await conflict.get_by_role("button", name="Save mine over theirs").click()
        await expect(panel.locator("dl")).to_contain_text("mine")
        assert (await mgmt.get_service("orders")).definition.owner == "mine"

        await page.get_by_role("button", name="Delete definition…").click()
        confirm = page.get_by_role("dialog")
        await expect(confirm.get_by_role("heading")).to_have_text(
            "Delete the definition of orders?"
        )
        await shot(page, "definition-delete")
        await confirm.get_by_role("button", name="Delete definition").click()
        await expect(page).to_have_url(fleet.admin.url)
        with pytest.raises(ServiceError, match="NOT_FOUND"):
            await mgmt.get_service("orders")


class TestDetails:
    """Service and instance pages show $SRV.STATS figures and chart the page's samples."""

    async def test_request_counts_after_calls(self, fleet: WebFleet, page: Page) -> None:
        async with Client(url=fleet.admin_url) as client:
            for _ in range(6):
                await client.call("quote", "ok", {})
            with pytest.raises(ServiceError):
                await client.call("quote", "fail", {})
        await page.goto(fleet.admin.url + "services/quote")
        ok = page.locator('tr[data-endpoint="ok"]')
        await expect(ok.locator("td.requests")).to_have_text(re.compile(r"^([6-9]|\d\d+)"))
        fail = page.locator('tr[data-endpoint="fail"]')
        await expect(fail.locator("td.errors")).to_have_text(re.compile(r"^[1-9]"))
        await expect(page.get_by_role("img", name=re.compile("^Throughput: now"))).to_be_visible()
        await shot(page, "service")

        instance = fleet.instances["quote"][0]
        await page.get_by_role("link", name=instance).click()
        await expect(page).to_have_url(fleet.admin.url + f"instances/{instance}")
        await expect(page.locator("h1")).to_have_text(instance)
        await expect(page.locator('tr[data-endpoint="ok"] td.requests')).to_have_text(
            re.compile(r"^[1-9]")
        )
        await expect(page.locator("section", has=page.locator("#record-heading"))).to_contain_text(
            "ACTIVE"
        )
        await shot(page, "instance")


class TestConfigurations:
    """Applications and configurations: JSON checked before sending, history, bindings."""

    async def test_create_edit_history_and_bound_instances(
        self, fleet: WebFleet, page: Page, mgmt: ManagementClient
    ) -> None:
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
        await page.goto(fleet.admin.url + "configurations")
        await expect(page.get_by_role("heading", name="Applications")).to_be_visible()
        await shot(page, "applications")
        await page.get_by_label("Name").fill("trading")
        await page.get_by_label("Comments").fill("The trading desk's settings")
        await page.get_by_role("button", name="Create application").click()
        await expect(page.locator("h1")).to_have_text("trading")
        await expect(page.get_by_role("heading", name="New configuration")).to_be_visible()
        await shot(page, "application")

        await page.get_by_label("Name").fill("limits")
        editor = page.get_by_label("Value (JSON)")
        await editor.fill('{"maxOrder": 100,}')
        creates = len([u for u in sent if u.endswith("/configs/create")])
        await page.get_by_role("button", name="Create configuration").click()
        error = page.locator(".field", has=editor).locator(".field-error")
        await expect(error).to_contain_text("Not valid JSON")
        assert len([u for u in sent if u.endswith("/configs/create")]) == creates  # never sent
        await editor.fill('{"maxOrder": 100}')
        await page.get_by_role("button", name="Create configuration").click()
        await expect(page.locator("h1")).to_have_text("trading / limits")

        # pricing follows trading/limits: its instance shows as bound.
        bound = page.locator("section", has=page.locator("#bound-heading"))
        await expect(bound).to_contain_text(fleet.instances["pricing"][0])
        await page.get_by_label("Value (JSON)").fill('{"maxOrder": 250}')
        await page.get_by_role("button", name="Save configuration").click()
        await expect(page.locator(".saved")).to_contain_text("Saved")
        history = page.locator("ol.history > li")
        await expect(history).to_have_count(2)
        await expect(history.first.locator("summary")).to_contain_text("Revision")
        await shot(page, "configuration")
        application = await mgmt.get_application(name="trading")
        configuration = await mgmt.get_configuration(
            application_id=application.application.id, name="limits"
        )
        assert configuration.configuration.config == {"maxOrder": 250}


class TestViewer:
    """With credentials that may not write, every editing control says so and is disabled."""

    async def test_editing_is_disabled_for_the_viewer(
        self, fleet: WebFleet, page: Page, mgmt: ManagementClient
    ) -> None:
        await mgmt.create_service("viewed", owner="team", version="1.0.0")
        base = fleet.viewer.url
        await page.goto(base)
        await expect(page.get_by_role("button", name="New service definition")).to_be_disabled()
        await expect(page.locator("#definitions-read-only")).to_contain_text("Read-only")
        await shot(page, "viewer-fleet")
        await page.goto(base + "services/viewed")
        await expect(page.get_by_role("button", name="Edit definition")).to_be_disabled()
        await expect(page.get_by_role("button", name="Delete definition…")).to_be_disabled()
        await expect(page.locator("#definition-read-only")).to_be_visible()
        await page.goto(base + "configurations")
        await expect(page.get_by_role("button", name="Create application")).to_be_disabled()


class TestConnection:
    """A lost NATS connection is shown, and the page recovers when it comes back."""

    async def test_lost_and_recovered(self, browser: Browser) -> None:
        with NatsServer() as server:
            settings = ConnectionSettings(url=server.url)
            async with open_monitor(settings, WebSettings(port=0)) as monitor:
                context, page, _ = await open_page(browser)
                try:
                    await page.goto(monitor.url)
                    await expect(page.locator("#live")).to_have_text("Live")
                    banner = page.locator("#connection")
                    await expect(banner).to_be_hidden()
                    await anyio.to_thread.run_sync(server.stop)
                    await expect(banner).to_contain_text("lost its connection to NATS")
                    await expect(page.locator("#live")).to_have_text("Offline")
                    await shot(page, "connection-lost")
                    await anyio.to_thread.run_sync(server.start)
                    await expect(banner).to_be_hidden(timeout=20_000)
                    await expect(page.locator("#live")).to_have_text("Live")
                finally:
                    await context.close()
