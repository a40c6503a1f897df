"""A real server and a real headless Chromium (Debian's `chromium`, driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from tests.client.harness import start_embedded_server
from tests.servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
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


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server process (embedded mode) serving the page at `/`."""
    server = start_embedded_server(tmp_path_factory.mktemp("web-server"))
    yield server
    server.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh headless Chromium page; fails the test on page errors.

    The system binary, since the network is closed to downloads. Function-scoped on purpose:
    the sync API runs an event loop while it is open, and the suite's async autouse fixtures
    need the thread's loop free between tests.
    """
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 760})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: _console(msg, problems))
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
    assert not problems, problems


def _console(message: ConsoleMessage, problems: list[str]) -> None:
    # The page asks /users/me on load to tell whether a session exists: that 401 is expected.
    if message.type == "error" and "401" not in message.text:
        problems.append(f"console {message.type}: {message.text}")
