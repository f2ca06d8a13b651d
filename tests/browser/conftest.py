"""Browser stories of the console: Debian's chromium driven by Playwright (one browser per
session, a fresh context per test), against the real app served by uvicorn on a free port
(tests/browser/console_app.py: seeded clinic, four users, a simulated clock).

Fixtures: `chromium_path`, `browser`, `console` (a `Console`), `page` (1280×900) and
`tablet_page` (768×1024) with base_url = the console's URL; helper `assert_accessible(page)`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from application.bootstrap import Outreach
from application.clock import SimulatedClock
from tests.browser.console_app import PASSWORD, Seeded, Served, close, open_console

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "scripts" / "ensure-chromium"
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 768, "height": 1024}
#: A browser wait longer than this is a failure, not a slow machine.
TIMEOUT_MS = 10_000
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The chromium to drive (scripts/ensure-chromium installs Debian's when missing).
    Never a skip: a suite that silently runs no browser proves nothing."""
    try:
        done = subprocess.run([str(ENSURE)], capture_output=True, text=True, timeout=600,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"scripts/ensure-chromium could not run: {exc}", pytrace=False)
    if done.returncode != 0:
        line = (done.stderr.strip().splitlines() or ["ensure-chromium failed"])[-1]
        where = " (CI)" if os.environ.get("CI") == "true" else ""
        pytest.fail(f"no chromium for the browser tests{where}: {line}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    # Chromium's sandbox refuses to start as root (containers, CI).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=args)
        yield launched
        launched.close()


@dataclass
class Console:
    """The served console and what is behind it: the application, its clock, the seed."""

    o: Outreach
    clock: SimulatedClock
    seeded: Seeded
    served: Served
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return self.served.url

    def email(self, who: str) -> str:
        """The email of a seeded user: "admin", "campaigns", "optouts" or "north"."""
        return self.seeded.emails[who]

    def sign_in(self, page: Page, who: str, next_path: str = "/console/") -> None:
        """Sign in through the form as a seeded user; returns on the landing page."""
        page.goto(f"/console/sign-in?next={quote(next_path, safe='')}")
        page.get_by_label("Email").fill(self.email(who))
        page.get_by_label("Password").fill(self.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/console/sign-in" not in url)
        page.wait_for_load_state()

    def advance(self, minutes: float) -> None:
        """Move the application's clock on (idle timeouts, lockouts, sending windows)."""
        self.clock.advance_to(self.clock.now() + timedelta(minutes=minutes))

    def catch_up(self) -> None:
        """Bring the read models up to date after acting on the application directly."""
        self.o.catch_up()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    o, clock, seeded, served = open_console(tmp_path)
    try:
        yield Console(o, clock, seeded, served)
    finally:
        close(o, served)


def _context(browser: Browser, console: Console, viewport: dict[str, int]) -> BrowserContext:
    context = browser.new_context(viewport=viewport, base_url=console.url)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = _context(browser, console, DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def tablet_page(browser: Browser, console: Console) -> Iterator[Page]:
    context = _context(browser, console, TABLET)
    try:
        yield context.new_page()
    finally:
        context.close()


def assert_accessible(page: Page) -> None:
    """axe-core (bundled with axe-playwright-python: nothing fetched) on the page as it is
    now; fails listing each serious or critical violation and where it is."""
    found: dict[str, Any] = Axe().run(page).response
    bad = [v for v in found.get("violations", []) if v.get("impact") in SERIOUS]
    lines = [f"{v['impact']}: {v['id']} ({v['help']}) at "
             f"{', '.join(str(n.get('target')) for n in v.get('nodes', [])[:3])}" for v in bad]
    assert not bad, f"accessibility violations on {page.url}:\n" + "\n".join(lines)
