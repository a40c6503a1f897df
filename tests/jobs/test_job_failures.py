"""Failures: permanent ones fail at once, transient ones are retried with backoff."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parley.settings import Settings
from tests.conftest import MODE
from tests.fixtures.apps import running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.users import Account
from tests.fixtures.workers import start_worker
from tests.jobs.conftest import (
    MAX_ATTEMPTS,
    job_settings,
    listening,
    new_prefix,
    post_job,
    wait_job,
)
from tests.jobs.pageserver import PageServer


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/status/404/a", "HTTP 404"),
        ("/status/410/a", "HTTP 410"),
        ("/file/a", "not HTML"),
        ("/big/a", "larger than 5 MiB"),
    ],
)
async def test_permanent_failures_fail_at_once_without_retry(
    client: httpx.AsyncClient, alice: Account, pages: PageServer, path: str, error: str
) -> None:
    job = await post_job(client, alice, pages.url(path))
    done = await wait_job(client, alice, job["id"])
    assert done["status"] == "failed"
    assert error in done["error"]
    assert done["attempts"] == 1
    assert done["pageId"] is None
    assert done["finishedAt"] is not None
    assert pages.count(path) == 1


async def test_an_unreachable_host_is_retried_then_fails(
    client: httpx.AsyncClient, alice: Account
) -> None:
    # Nothing listens on port 9 of loopback: connection refused, a transient error.
    job = await post_job(client, alice, "http://127.0.0.1:9/nothing")
    done = await wait_job(client, alice, job["id"])
    assert done["status"] == "failed"
    assert done["attempts"] == MAX_ATTEMPTS
    assert f"gave up after {MAX_ATTEMPTS} attempts" in done["error"]


async def test_a_server_error_is_retried_with_backoff_then_fails(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    async with listening(app, alice.id) as events:
        job = await post_job(client, alice, pages.url("/status/503/always"))
        retries = []
        while True:
            update = await events.next("job.updated", lambda d: d["id"] == job["id"])
            if update["status"] == "queued" and update["attempts"] > 0:
                retries.append(update)
            if update["status"] == "failed":
                break
    # Between attempts the job waits queued, saying why and when it runs again.
    assert [r["attempts"] for r in retries] == list(range(1, MAX_ATTEMPTS))
    for retry in retries:
        assert "HTTP 503" in retry["error"]
        assert retry["progress"] == 0
        assert retry["runAt"] > retry["startedAt"]
    assert update["attempts"] == MAX_ATTEMPTS
    assert "HTTP 503" in update["error"]
    assert f"gave up after {MAX_ATTEMPTS} attempts" in update["error"]
    assert pages.count("/status/503/always") == MAX_ATTEMPTS


async def test_a_job_succeeds_once_the_server_recovers(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    job = await post_job(client, alice, pages.url("/flaky/2/recovering"))
    done = await wait_job(client, alice, job["id"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 3
    assert done["error"] is None
    assert pages.count("/flaky/2/recovering") == 3


async def test_rate_limited_is_transient(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    job = await post_job(client, alice, pages.url("/status/429/limited"))
    done = await wait_job(client, alice, job["id"])
    assert (done["status"], done["attempts"]) == ("failed", MAX_ATTEMPTS)


async def test_with_the_guard_on_private_addresses_are_refused(
    database_url: str,
    redis_url: str | None,
    alice: Account,
    pages: PageServer,
    tmp_path: Any,
) -> None:
    """PARLEY_FETCH_ALLOW_PRIVATE=false: loopback is refused, at once and for good."""
    settings: Settings = job_settings(
        database_url, redis_url, new_prefix(), fetch_allow_private=False
    )
    worker = start_worker(settings, tmp_path) if MODE == "services" else None
    try:
        async with running_app(settings) as guarded, guarded_client(guarded) as client:
            job = await post_job(client, alice, pages.url("/page/guarded"))
            done = await wait_job(client, alice, job["id"])
    finally:
        if worker is not None:
            worker.stop()
    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert "127.0.0.1" in done["error"]
    assert pages.count("/page/guarded") == 0
