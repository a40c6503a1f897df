"""Workers that die, brokers that are down, processes that restart: no job is left hanging."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.chats.models import Chat, ChatMember, Message
from parley.jobs.context import JobContext
from parley.jobs.limits import JobLimits
from parley.jobs.models import Job, MessagePreview, set_previews
from parley.jobs.sweeper import sweep_stale
from tests.conftest import MODE, Account
from tests.jobs.brokers import rabbitmq_vhost
from tests.jobs.conftest import (
    api_client,
    job_settings,
    listening,
    new_prefix,
    post_job,
    running_app,
    wait_job,
)
from tests.jobs.pageserver import PageServer
from tests.jobs.workers import start_worker

services_only = [
    pytest.mark.services_only,
    pytest.mark.skipif(MODE != "services", reason="needs Redis and PostgreSQL"),
]


async def flag(event: Any, timeout: float = 30.0) -> bool:
    """Wait for a threading.Event without blocking the loop."""
    return bool(await asyncio.to_thread(event.wait, timeout))


async def add_job(app: Any, **values: Any) -> int:
    """Insert a job row as some earlier process left it."""
    async with app.state.resources.db.session() as session:
        job = Job(kind="parse", **values)
        session.add(job)
        await session.commit()
        return job.id


async def test_the_sweeper_fails_jobs_and_previews_whose_worker_is_gone(
    app: Any, alice: Account
) -> None:
    resources = app.state.resources
    limits = JobLimits.from_settings(resources.settings)
    now = datetime.now(UTC)
    long_ago = now - timedelta(seconds=limits.stale_after + 5)
    stuck = await add_job(
        app,
        user_id=alice.id,
        url="http://example.com/stuck",
        status="running",
        attempts=1,
        progress=10,
        started_at=long_ago,
    )
    busy = await add_job(
        app,
        user_id=alice.id,
        url="http://example.com/busy",
        status="running",
        attempts=1,
        progress=10,
        started_at=now,
        run_at=now + timedelta(hours=1),
    )
    async with resources.db.session() as session:
        chat = Chat(type="group", title="t", creator_id=alice.id)
        session.add(chat)
        await session.flush()
        session.add(ChatMember(chat_id=chat.id, user_id=alice.id, role="owner"))
        message = Message(chat_id=chat.id, author_id=alice.id, text="http://example.com/p")
        old = now - timedelta(seconds=limits.preview_stale_after + 5)
        preview = MessagePreview(position=0, url="http://example.com/p", created_at=old)
        preview.updated_at = old
        set_previews(message, [preview])
        session.add(message)
        await session.commit()

    context = JobContext(resources.settings, limits, resources.db, resources.bus)
    async with listening(app, alice.id) as events:
        assert await sweep_stale(context) == 2
        failed = await events.next("job.updated", lambda d: d["id"] == stuck)
        updated = await events.next("message.updated")
    assert failed["status"] == "failed"
    assert "stopped" in failed["error"]
    assert failed["finishedAt"] is not None
    assert updated["previews"][0]["status"] == "failed"
    async with resources.db.session() as session:
        assert (await session.get(Job, busy)).status == "running"  # type: ignore[union-attr]


async def test_the_worker_sweeps_on_its_own(
    database_url: str, alice: Account, tmp_path: Path
) -> None:
    """The embedded worker (in-memory broker) queues sweeps itself: no beat process."""
    settings = job_settings(database_url, None, new_prefix(), job_sweep_interval_seconds=0.5)
    limits = JobLimits.from_settings(settings)
    async with running_app(settings) as application, api_client(application) as client:
        long_ago = datetime.now(UTC) - timedelta(seconds=limits.stale_after + 5)
        stuck = await add_job(
            application,
            user_id=alice.id,
            url="http://example.com/x",
            status="running",
            attempts=1,
            started_at=long_ago,
        )
        done = await wait_job(client, alice, stuck)
    assert done["status"] == "failed"


async def test_an_embedded_restart_runs_the_jobs_the_last_process_left(
    database_url: str, alice: Account, pages: PageServer
) -> None:
    """The in-memory broker dies with its process: at start, unfinished work is queued again."""
    settings = job_settings(database_url, None, new_prefix())
    run_at = datetime.now(UTC) + timedelta(seconds=1)
    async with running_app(settings) as first, api_client(first) as client:
        later = await post_job(client, alice, pages.url("/page/restart"), runAt=run_at.isoformat())
        interrupted = await add_job(
            first,
            user_id=alice.id,
            url=pages.url("/page/interrupted"),
            status="running",
            attempts=1,
            progress=60,
            started_at=datetime.now(UTC),
        )
    async with running_app(settings) as second, api_client(second) as client:
        done = await wait_job(client, alice, later["id"])
        resumed = await wait_job(client, alice, interrupted)
    assert done["status"] == "succeeded"
    assert datetime.fromisoformat(done["startedAt"]) >= run_at
    assert (resumed["status"], resumed["attempts"]) == ("succeeded", 2)


async def test_health_reports_the_broker(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/health")
    assert resp.status_code == 200, resp.text
    assert resp.json()["checks"]["broker"] == "ok"


async def test_a_broker_that_is_down_is_reported_and_fails_new_jobs(
    database_url: str, alice: Account
) -> None:
    settings = job_settings(database_url, None, new_prefix(), broker_url="redis://127.0.0.1:1/0")
    async with running_app(settings) as application, api_client(application) as client:
        health = await client.get("/api/v1/health")
        assert health.status_code == 503
        assert health.json()["checks"]["broker"] != "ok"
        failed_before = await _failed_parse_jobs(client)
        resp = await client.post(
            "/api/v1/jobs/parse", json={"url": "http://example.com/"}, headers=alice.headers
        )
        assert resp.status_code == 503, resp.text
        jobs = (await client.get("/api/v1/jobs", headers=alice.headers)).json()["items"]
        assert await _failed_parse_jobs(client) == failed_before + 1
    assert jobs[0]["status"] == "failed"
    assert "queue is unavailable" in jobs[0]["error"]


async def _failed_parse_jobs(client: httpx.AsyncClient) -> float:
    """This process's count of parse jobs that ended failed, from /metrics."""
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('parley_jobs_finished_total{kind="parse",status="failed"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_parley_worker_needs_a_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    done = subprocess.run(
        [sys.executable, "-m", "parley.cli", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"needs a broker" in done.stderr


async def killed_midway(
    database_url: str,
    redis_url: str | None,
    alice: Account,
    pages: PageServer,
    workdir: Path,
    **broker: Any,
) -> dict[str, Any]:
    """Kill the worker while it fetches a page, start another: the job must still finish."""
    settings = job_settings(database_url, redis_url, new_prefix(), **broker)
    key = uuid.uuid4().hex
    first = start_worker(settings, workdir, name="first", concurrency=1)
    try:
        async with running_app(settings) as application, api_client(application) as client:
            job = await post_job(client, alice, pages.url(f"/hold/{key}"))
            assert await flag(pages.arrived(key)), first.log()
            running = (await client.get(f"/api/v1/jobs/{job['id']}", headers=alice.headers)).json()
            assert (running["status"], running["attempts"]) == ("running", 1)
            first.kill()
            pages.release(key)
            second = start_worker(settings, workdir, name="second")
            try:
                done = await wait_job(client, alice, job["id"], timeout=90)
            finally:
                second.stop()
    finally:
        first.kill()
    assert pages.count(f"/hold/{key}") >= 2
    return done


@pytest.mark.parametrize("_", [None], ids=["redis"])
@pytest.mark.timeout(180)
async def test_a_killed_workers_job_runs_again_redis(
    database_url: str,
    redis_url: str | None,
    alice: Account,
    pages: PageServer,
    tmp_path: Path,
    _: None,
) -> None:
    """Redis hands the dead worker's unacknowledged message out again (visibility timeout)."""
    done = await killed_midway(database_url, redis_url, alice, pages, tmp_path)
    assert done["status"] == "succeeded", done
    assert done["attempts"] >= 2


@pytest.mark.timeout(180)
async def test_a_killed_workers_job_runs_again_rabbitmq(
    database_url: str, redis_url: str | None, alice: Account, pages: PageServer, tmp_path: Path
) -> None:
    """RabbitMQ requeues the dead worker's unacknowledged message as soon as it is gone."""
    with rabbitmq_vhost() as broker_url:
        done = await killed_midway(
            database_url, redis_url, alice, pages, tmp_path, broker_url=broker_url
        )
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2


async def test_rabbitmq_broker_runs_retries_and_schedules(
    database_url: str, redis_url: str | None, alice: Account, pages: PageServer, tmp_path: Path
) -> None:
    with rabbitmq_vhost() as broker_url:
        settings = job_settings(database_url, redis_url, new_prefix(), broker_url=broker_url)
        worker = start_worker(settings, tmp_path, name="rabbit")
        try:
            async with running_app(settings) as application, api_client(application) as client:
                health = await client.get("/api/v1/health")
                assert health.json()["checks"]["broker"] == "ok", health.text
                run_at = datetime.now(UTC) + timedelta(seconds=1)
                async with listening(application, alice.id) as events:
                    ok = await post_job(client, alice, pages.url("/page/rabbit"))
                    flaky = await post_job(client, alice, pages.url("/flaky/1/rabbit"))
                    later = await post_job(
                        client, alice, pages.url("/page/rabbit-later"), runAt=run_at.isoformat()
                    )
                    results = {}
                    while len(results) < 3:
                        data = await events.next(
                            "job.updated", lambda d: d["status"] in ("succeeded", "failed")
                        )
                        results[data["id"]] = data
        finally:
            worker.stop()
    assert results[ok["id"]]["status"] == "succeeded"
    assert (results[flaky["id"]]["status"], results[flaky["id"]]["attempts"]) == ("succeeded", 2)
    assert results[later["id"]]["status"] == "succeeded"
    assert datetime.fromisoformat(results[later["id"]]["startedAt"]) >= run_at


for _test in (
    test_a_killed_workers_job_runs_again_redis,
    test_a_killed_workers_job_runs_again_rabbitmq,
    test_rabbitmq_broker_runs_retries_and_schedules,
):
    for _mark in services_only:
        _mark(_test)
