"""The real browser for the console's tests: Debian's Chromium (/usr/bin/chromium, which
.ci/run installs), driven by Playwright; a page that fails on any script or CSP error; a
logged-in coordinator; screenshots into tests/artefacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.console_fixtures import COORDINATOR, ConsoleSite

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root, on a machine without internet: no sandbox, no GPU, and none
# of the background connections it would try at start.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTEFACTS = Path(__file__).parent / "artefacts"
# How long `expect` waits for the page to get there (nothing is asserted about time: the
# inbox polls every 5 s, and two shared cores can be slow).
expect.set_options(timeout=30_000)


def chromium() -> str:
    """Debian's Chromium; a missing one fails every browser test, loudly."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Debian's chromium is missing ({CHROMIUM}): apt-get install chromium "
            "(.ci/run installs it; Playwright's own browser download does not work here)"
        )
    return str(CHROMIUM)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE")
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text)
              if message.type == "error" else None)  # fmt: skip
    opened.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    # The CSP forbids inline scripts and styles: nothing the console needs may trip it.
    assert not [p for p in problems if "Content Security Policy" in p or "Error" in p], problems


async def shoot(page: Page, name: str) -> Path:
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def log_in(page: Page, site: ConsoleSite, identity: str = COORDINATOR) -> None:
    await page.goto(site.link(identity))
    await page.click("#login")
    await expect(page.locator("#nav-inbox")).to_be_visible()
