"""Browser journeys (all marked `e2e`): Playwright driving Debian's Chromium against pytest-django's live server.

Playwright's sync API keeps an asyncio loop running in the main thread, and Django refuses ORM calls from a thread
with a running loop; the tests only use the ORM synchronously between browser steps, so that guard is switched off
here, at import time, before any test runs.
"""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import PASSWORD, ROOT

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser() -> Browser:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail(
            "Debian's Chromium is missing: run `apt-get update && apt-get install -y chromium` "
            "(never `playwright install`).",
            pytrace=False,
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def world(transactional_db, world):
    """The suite's users, committed for real so that the live server's thread sees them."""
    return world


@pytest.fixture
def page(browser, live_server) -> Page:
    """A fresh browser context per test; on teardown, checks that every request stayed on the live server."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    yield page
    context.close()
    outside = [url for url in requested if not url.startswith(live_server.url + "/")]
    assert not outside, f"the page requested something off the live server (a CDN?): {outside}"
    assert requested, "the page made no requests at all"


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, live_server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
