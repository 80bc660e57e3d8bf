# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A real server and a real browser for the page journeys: uvicorn on 127.0.0.1 over a copied test hub, driven by
Debian's headless Chromium through Playwright (one browser for the whole session).

The journeys run on SQLite only: the pages call the same services as the API, whose behaviour on PostgreSQL
the API tests cover; what is tested here is the browser's side (forms, cookies, CSRF, rendering).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.portal.world import Template, World, build_world
from tests.serving import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
"""Screenshots of every page the journeys visit (gitignored), to look at after a run."""


@pytest.fixture(scope="module")
def page_world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Template) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("pages"), sqlite_template, None)


@pytest.fixture(scope="module")
def server(page_world: World) -> Iterator[str]:
    """The portal served by uvicorn in a background thread; yields its base URL."""
    with serving(page_world.hub) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: while open, Playwright's sync API keeps an event loop running in the main thread,
    # and later tests (asyncio.run in the resilience tests) need it closed.
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/test, which installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


EVENT_TIMEOUT_MS = 60_000
"""How long a page test waits for an event before failing (never a fixed sleep)."""
expect.set_options(timeout=EVENT_TIMEOUT_MS)  # assertions' waits too (Playwright's own default is 5 s)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    p = context.new_page()
    # Waits end on the event (a selector, a download); the bound only says when to give up, and a loaded CI
    # machine builds dummy data or runs an analysis many times slower than an idle one.
    p.set_default_timeout(EVENT_TIMEOUT_MS)
    yield p
    context.close()
