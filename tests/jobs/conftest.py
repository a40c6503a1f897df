"""Fixtures for the job tests: an app with quick retries, its worker, a page server, events.

Embedded mode: the app runs its worker in-process on the in-memory broker. Services mode:
the app sends to Redis (PARLEY_TEST_REDIS) and a `parley worker` subprocess runs the jobs.
Queue names get a per-run prefix, so concurrent runs on one broker never share messages.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from parley.realtime.codec import Frame
from parley.settings import Settings
from tests.conftest import MODE, delete_bus_keys, migrated_database, truncate_all
from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.users import Account
from tests.fixtures.workers import WorkerProcess, start_worker
from tests.jobs.pageserver import PageServer, running_page_server

DEADLINE = 30.0
MAX_ATTEMPTS = 3

# Quick retries for tests; the time limit is the smallest the fetcher's 10 s timeout allows.
JOB_OVERRIDES: dict[str, Any] = {
    "job_max_attempts": MAX_ATTEMPTS,
    "job_retry_backoff_seconds": 0.2,
    "job_retry_backoff_max_seconds": 0.5,
    "job_time_limit_seconds": 20,
    "broker_visibility_timeout_seconds": 30,
    "worker_concurrency": 4,
    "job_progress_interval_seconds": 0,  # every step is written: the tests watch each one
}


def job_settings(
    database_url: str, redis_url: str | None, prefix: str, **overrides: Any
) -> Settings:
    """Test settings for the app and its workers, with jobs on queues named `prefix*`."""
    values = {**JOB_OVERRIDES, "job_queue_prefix": prefix, **overrides}
    return make_settings(database_url, redis_url, **values)


def new_prefix() -> str:
    """A queue-name prefix no other test run uses."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the job tests' own: the leading relay of a database sends every job its
    outbox holds to its own broker, so apps with other queues must not share it."""
    with migrated_database(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="session")
def jobs_settings(database_url: str, redis_url: str | None) -> Settings:
    """The settings of the jobs tests' app (and its worker in services mode)."""
    return job_settings(database_url, redis_url, new_prefix())


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="session")
def session_worker(jobs_settings: Settings, workdir: Path) -> Iterator[WorkerProcess | None]:
    """The `parley worker` of the session in services mode; none when embedded."""
    if MODE != "services":
        yield None
        return
    worker = start_worker(jobs_settings, workdir, log_name="session-worker.log")
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
async def app(jobs_settings: Settings, session_worker: WorkerProcess | None) -> AsyncIterator[Any]:
    """The app under test (overrides the root fixture: quick retries, own queues)."""
    async with running_app(jobs_settings) as application:
        yield application


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty tables after each test; in Redis only the bus's keys (the broker's stay)."""
    yield
    if "database_url" not in request.fixturenames:
        return
    await _truncate(request.getfixturevalue("database_url"))
    redis_url = request.getfixturevalue("redis_url")
    if redis_url:
        await delete_bus_keys(redis_url)


async def _truncate(database_url: str, tries: int = 5) -> None:
    """Truncate every table; a worker still finishing a job may deadlock it: try again."""
    for attempt in range(tries):
        try:
            await truncate_all(database_url)
            return
        except DBAPIError as exc:
            if "deadlock" not in str(exc) or attempt == tries - 1:
                raise


@pytest.fixture(scope="session")
def pages() -> Iterator[PageServer]:
    """The loopback page server."""
    with running_page_server() as server:
        yield server


# -- helpers --------------------------------------------------------------------------------


class Events:
    """The events one user receives on the app's bus, as parsed frames."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []

    def __call__(self, frame: Frame) -> None:
        self.queue.put_nowait(json.loads(frame.text))

    async def next(
        self,
        event_type: str,
        where: Callable[[dict[str, Any]], bool] = lambda data: True,
        timeout: float = DEADLINE,
    ) -> dict[str, Any]:
        """The data of the next event of `event_type` that matches `where`."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.queue.get()
                self.seen.append(frame)
                if frame["type"] == event_type and where(frame["data"]):
                    data: dict[str, Any] = frame["data"]
                    return data

    async def each(
        self,
        *wanted: tuple[str, Callable[[dict[str, Any]], bool]],
        timeout: float = DEADLINE,
    ) -> list[dict[str, Any]]:
        """The data of the first event matching each (type, condition) of `wanted`, in that
        order, whatever order they arrive in (events of different origins race)."""
        found: list[dict[str, Any] | None] = [None] * len(wanted)
        async with asyncio.timeout(timeout):
            while any(data is None for data in found):
                frame = await self.queue.get()
                self.seen.append(frame)
                for i, (event_type, where) in enumerate(wanted):
                    if found[i] is None and frame["type"] == event_type and where(frame["data"]):
                        found[i] = frame["data"]
                        break
        return [data for data in found if data is not None]

    def pending(self) -> list[dict[str, Any]]:
        """Every event received so far and not yet consumed."""
        out = []
        while not self.queue.empty():
            frame = self.queue.get_nowait()
            self.seen.append(frame)
            out.append(frame)
        return out


@asynccontextmanager
async def listening(application: FastAPI, user_id: int) -> AsyncIterator[Events]:
    """Subscribe to `user_id`'s events on the app's bus for the duration of the block."""
    bus = application.state.resources.bus
    events = Events()
    bus.listen(user_id, events)
    try:
        yield events
    finally:
        bus.unlisten(user_id, events)


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, timeout: float = DEADLINE, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy (a state change we cannot subscribe to)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def post_job(
    client: httpx.AsyncClient, account: Account, url: str, **extra: Any
) -> dict[str, Any]:
    """POST /jobs/parse and return the 202 body."""
    resp = await client.post(
        "/api/v1/jobs/parse", json={"url": url, **extra}, headers=account.headers
    )
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def wait_job(
    client: httpx.AsyncClient,
    account: Account,
    job_id: int,
    statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
    timeout: float = DEADLINE,
) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job reaches one of `statuses`; returns it."""

    async def check() -> dict[str, Any] | None:
        resp = await client.get(f"/api/v1/jobs/{job_id}", headers=account.headers)
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        return job if job["status"] in statuses else None

    result: dict[str, Any] = await wait_for(check, timeout=timeout, what=f"job in {statuses}")
    return result
