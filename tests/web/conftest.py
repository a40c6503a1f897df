"""A real `parley serve` (and, in services mode, a real `parley worker` on PostgreSQL and
Redis) and a real headless Chromium (Debian's `chromium`, driven by Playwright)."""

from __future__ import annotations

import contextlib
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.conftest import MODE, REDIS_URL, migrated_database
from tests.fixtures.apps import make_settings
from tests.fixtures.servers import ServerProcess, free_port, server_env, start_server
from tests.fixtures.workers import WorkerProcess, start_worker

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
WIDE: ViewportSize = {"width": 1200, "height": 760}
# What the page shows follows the server and the background jobs: give a loaded machine time.
expect.set_options(timeout=15_000)
# The browser logs every non-2xx answer. These two are the page asking whether a session
# exists (401 when not) and whether billing is on (404 when off): expected, not problems.
EXPECTED_ANSWERS = [(401, "/api/v1/auth/session"), (404, "/api/v1/billing")]


@dataclass
class WebServer:
    """`parley serve` on a port that survives restarts (the page's origin must not change)."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: ServerProcess | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.http}/api/v1"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.process = start_server(self.env, self.workdir, port=self.port)

    def stop(self) -> None:
        """Stop it the way an operator does (SIGTERM: sockets are closed with 1001)."""
        if self.process is not None:
            self.resume()
            self.process.stop()

    def freeze(self) -> None:
        """SIGSTOP: its sockets stay open but nothing answers (a hung process, a dead link)."""
        assert self.process is not None
        self.process.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `freeze` (harmless otherwise)."""
        if self.process is not None:
            self.process.process.send_signal(signal.SIGCONT)  # not if reaped already


def _flush(redis_url: str | None) -> None:
    if redis_url:
        with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
            client.flushdb()


@pytest.fixture(scope="package")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The server the page is served from, on its own fresh database: SQLite in embedded
    mode; PostgreSQL, Redis and a `parley worker` for the parse jobs in services mode.

    Package-scoped: started once for tests/web and stopped when they are done. Tests that
    stop or freeze it leave it running again."""
    workdir = tmp_path_factory.mktemp("web")
    redis_url = REDIS_URL if MODE == "services" else None
    prefix = f"web{uuid.uuid4().hex[:8]}."
    with migrated_database(tmp_path_factory) as database_url:
        _flush(redis_url)
        server = WebServer(
            server_env(database_url, redis_url, PARLEY_JOB_QUEUE_PREFIX=prefix), workdir
        )
        worker: WorkerProcess | None = None
        if MODE == "services":
            settings = make_settings(database_url, redis_url, job_queue_prefix=prefix)
            worker = start_worker(settings, workdir, log_name="web-worker.log")
        try:
            server.start()
            yield server
        finally:
            server.stop()
            if worker is not None:
                worker.kill()  # idle by now, and its queues are this run's alone
            _flush(redis_url)


@dataclass
class Pages:
    """Browser contexts (one per person, each with its own cookies) in one Chromium.

    Page errors and console errors fail the test, except the expected answers above and
    whatever a test declares with `allow` (going offline logs failed requests)."""

    browser: Browser
    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def new(self, *, viewport: ViewportSize | None = None, clock: bool = False) -> Page:
        """A page in a new context; with `clock`, timers run on Playwright's clock (real
        time by default) so that a test can fast-forward or pause them."""
        context = self.browser.new_context(viewport=viewport or WIDE)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", self._console)
        if clock:
            page.clock.install()
        return page

    def allow(self, pattern: str) -> None:
        """Console errors matching `pattern` (a regex) are expected from now on."""
        self.allowed.append(re.compile(pattern))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        for status, path in EXPECTED_ANSWERS:
            if f"status of {status}" in message.text and url.split("?")[0].endswith(path):
                return
        if any(p.search(f"{message.text} {url}") for p in self.allowed):
            return
        self.problems.append(f"console error: {message.text} ({url})")


@pytest.fixture
def pages() -> Iterator[Pages]:
    """A headless Chromium for one test.

    The system binary, since the network is closed to downloads. Function-scoped on purpose:
    the sync API runs an event loop while it is open, and the suite's async autouse fixtures
    need the thread's loop free between tests.
    """
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        found = Pages(browser)
        try:
            yield found
        finally:
            browser.close()
    assert not found.problems, found.problems


@pytest.fixture
def page(pages: Pages) -> Page:
    """One wide page."""
    return pages.new()
