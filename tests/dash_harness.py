"""Browser-test harness of the dashboard (a pytest plugin loaded by conftest.py).

Fixtures: `dash_browser` (one headless Debian Chromium per test session, driven by
Playwright), `dash_server` (the real API on a loopback port, tests/helpers.LiveServer),
`dash_worker` (a `broadcaster worker` process on the same database and queue), `dash_page`
(a fresh browser context and page on the server, 1280x900), `signed_in_page` (that page,
signed in with `sync_creds`). Synchronise on Playwright's auto-waiting
`expect(...)` (60 s here): import it from here (tests/dash_browser.py says why)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import dash_browser as dash_browser_mod
from tests.dash_browser import expect
from tests.helpers import Creds, LiveServer

__all__ = ["CSRF_RE", "expect", "screenshot", "sign_in", "sign_in_http"]
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')

CHROMIUM = os.environ.get("BROADCASTER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000
SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "docs", "screenshots")


@pytest.fixture(scope="session")
def dash_browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}: scripts/test installs Debian's chromium "
                    "(apt-get install -y chromium), or set BROADCASTER_TEST_CHROMIUM")
    pw, _ = dash_browser_mod.start()
    dash_browser_mod.set_expect_timeout(TIMEOUT_MS)
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield browser
    browser.close()
    dash_browser_mod.stop(pw)


@pytest.fixture
def dash_server(live_server: LiveServer) -> LiveServer:
    return live_server


@pytest.fixture
def dash_worker(start_worker: Callable[..., subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    return start_worker()


@pytest.fixture
def dash_page(dash_browser: Any, dash_server: LiveServer) -> Iterator[Any]:
    ctx = dash_browser.new_context(base_url=dash_server.url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    yield page
    ctx.close()


def sign_in(page: Any, creds: Creds) -> None:
    page.goto("/dashboard/signin")
    page.get_by_label("API key").fill(creds.api_key)
    page.get_by_label("API secret").fill(creds.api_secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.fixture
def signed_in_page(dash_page: Any, sync_creds: Creds) -> Any:
    sign_in(dash_page, sync_creds)
    return dash_page


def screenshot(page: Any, name: str) -> str:
    """A full-page PNG of the page as it is. With BROADCASTER_SCREENSHOTS=1 (scripts/screenshots)
    it is docs/screenshots/<name>.png, committed and linked from the README; otherwise a
    temporary file, so a test run leaves the tree clean."""
    if os.environ.get("BROADCASTER_SCREENSHOTS") == "1":
        folder = SCREENSHOTS
    else:
        folder = os.path.join(tempfile.gettempdir(), f"bc-screenshots-{os.getpid()}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 1000, path
    return path


async def sign_in_http(client: Any, creds: Creds) -> str:
    """Signs an aiohttp test client in as a browser would; returns the session's CSRF token."""
    r = await client.get("/dashboard/signin")
    token = CSRF_RE.search(await r.text()).group(1)  # type: ignore[union-attr]
    r = await client.post("/dashboard/signin", data={"api_key": creds.api_key, "api_secret": creds.api_secret,
                                                     "csrf": token}, allow_redirects=False)
    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/dashboard/campaigns"
    r = await client.get("/dashboard/campaigns")
    assert r.status == 200
    return CSRF_RE.search(await r.text()).group(1)  # type: ignore[union-attr]
