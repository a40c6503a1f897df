"""Workers that die, brokers that are down, processes that restart: no job is left hanging."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.chats.models import Chat, ChatMember, Message, MessagePreview
from parley.chats.previews import fail_stale_previews
from parley.jobs.models import Job
from parley.jobs.sweeper import requeue_abandoned
from parley.worker import JobLimits
from tests.fixtures.apps import running_app
from tests.fixtures.commands import run_parley
from tests.fixtures.http import guarded_client
from tests.fixtures.users import Account, register
from tests.fixtures.workers import start_worker
from tests.jobs.brokers import rabbitmq_vhost
from tests.jobs.conftest import (
    job_settings,
    listening,
    new_prefix,
    post_job,
    wait_job,
)
from tests.jobs.pageserver import PageServer

services_only = [pytest.mark.services_only]


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


async def test_the_sweeper_requeues_jobs_whose_heartbeat_stopped_and_fails_stale_previews(
    app: Any, alice: Account, pages: PageServer
) -> None:
    resources = app.state.resources
    limits = JobLimits.from_settings(resources.settings)
    now = datetime.now(UTC)
    silent_since = now - timedelta(seconds=limits.abandoned_after + 5)
    # The leading relay sweeps too, every few seconds: listen before the rows exist.
    async with listening(app, alice.id) as events:
        stuck = await add_job(
            app,
            user_id=alice.id,
            url=pages.url("/page/stuck"),
            status="running",
            attempts=1,
            progress=10,
            started_at=silent_since,
            heartbeat_at=silent_since,
        )
        busy = await add_job(
            app,
            user_id=alice.id,
            url=pages.url("/page/busy"),
            status="running",
            attempts=1,
            progress=10,
            started_at=silent_since,
            heartbeat_at=now,
            run_at=now + timedelta(hours=1),
        )
        await _add_stale_preview(app, alice.id, now - timedelta(seconds=limits.preview_stale_after))
        # The relay may have been first: at most one job and one preview are left to it.
        assert await requeue_abandoned(resources.jobs.context) <= 1
        assert await fail_stale_previews(resources.jobs.context) <= 1
        # The worker may finish the job before the preview's event is out, or after.
        requeued, updated, done = await events.each(
            ("job.updated", lambda d: d["id"] == stuck and d["status"] == "queued"),
            ("message.updated", lambda d: True),
            ("job.updated", lambda d: d["id"] == stuck and d["status"] == "succeeded"),
        )
    assert requeued["status"] == "queued"
    assert "stopped" in requeued["error"]
    assert done["attempts"] == 2
    assert updated["previews"][0]["status"] == "failed"
    async with resources.db.session() as session:
        assert (await session.get(Job, busy)).status == "running"  # type: ignore[union-attr]


async def _add_stale_preview(app: Any, user_id: int, before: datetime) -> None:
    """A message whose preview has been pending since before `before`."""
    async with app.state.resources.db.session() as session:
        chat = Chat(type="group", title="t", creator_id=user_id)
        session.add(chat)
        await session.flush()
        session.add(ChatMember(chat_id=chat.id, user_id=user_id, role="owner"))
        message = Message(chat_id=chat.id, author_id=user_id, text="http://example.com/p")
        old = before - timedelta(seconds=5)
        preview = MessagePreview(position=0, url="http://example.com/p", created_at=old)
        preview.updated_at = old
        message.previews = [preview]
        session.add(message)
        await session.commit()


async def test_the_relay_sweeps_on_its_own(own_database_url: str, pages: PageServer) -> None:
    """No beat process: the leading server process sweeps as part of its relay (the app is
    alone on its database, so its relay leads)."""
    settings = job_settings(own_database_url, None, new_prefix(), job_heartbeat_seconds=0.5)
    limits = JobLimits.from_settings(settings)
    async with running_app(settings) as application, guarded_client(application) as client:
        alice = await register(client, "alice")
        silent_since = datetime.now(UTC) - timedelta(seconds=limits.abandoned_after + 5)
        stuck = await add_job(
            application,
            user_id=alice.id,
            url=pages.url("/page/swept"),
            status="running",
            attempts=1,
            started_at=silent_since,
            heartbeat_at=silent_since,
        )
        done = await wait_job(client, alice, stuck)
    assert (done["status"], done["attempts"]) == ("succeeded", 2)


async def test_an_embedded_restart_runs_the_jobs_the_last_process_left(
    database_url: str, alice: Account, pages: PageServer
) -> None:
    """The in-memory broker dies with its process: at start, unfinished work is queued again."""
    settings = job_settings(database_url, None, new_prefix())
    run_at = datetime.now(UTC) + timedelta(seconds=1)
    async with running_app(settings) as first, guarded_client(first) as client:
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
    async with running_app(settings) as second, guarded_client(second) as client:
        done = await wait_job(client, alice, later["id"])
        resumed = await wait_job(client, alice, interrupted)
    assert done["status"] == "succeeded"
    assert datetime.fromisoformat(done["startedAt"]) >= run_at
    assert (resumed["status"], resumed["attempts"]) == ("succeeded", 2)


async def test_health_reports_the_broker(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/health")
    assert resp.status_code == 200, resp.text
    assert resp.json()["checks"]["broker"] == "ok"


@pytest.mark.services_only
async def test_a_broker_that_is_down_delays_new_jobs_and_loses_none(
    own_database_url: str,
    redis_url: str | None,
    pages: PageServer,
    private_redis: Any,
    tmp_path: Path,
) -> None:
    """The job and its enqueue commit together: 202 while the broker is down, and the job
    runs once the broker is back (sent by this app's relay: it is alone on its database)."""
    broker = private_redis()
    broker.stop()
    settings = job_settings(own_database_url, redis_url, new_prefix(), broker_url=broker.url)
    async with (
        running_app(settings) as application,
        guarded_client(application, allow={503}) as client,
    ):
        alice = await register(client, "alice")
        health = await client.get("/api/v1/health")
        assert health.status_code == 503
        assert health.json()["checks"]["broker"] != "ok"
        job = await post_job(client, alice, pages.url("/page/broker-back"))
        assert job["status"] == "queued"
        broker.start()
        worker = start_worker(settings, tmp_path, log_name="after-outage.log")
        try:
            done = await wait_job(client, alice, job["id"], timeout=60)
        finally:
            worker.stop()
    assert (done["status"], done["attempts"]) == ("succeeded", 1)


def test_parley_worker_needs_a_broker(tmp_path: Path) -> None:
    done = run_parley({}, "worker", cwd=tmp_path)
    assert done.returncode == 2
    assert "needs a broker" in done.stderr


async def killed_midway(
    database_url: str,
    redis_url: str | None,
    alice: Account,
    pages: PageServer,
    workdir: Path,
    **broker: Any,
) -> dict[str, Any]:
    """Kill the worker while it fetches a page, start another: the job must still finish,
    well before the broker's own redelivery (a visibility timeout of 300 s), and its owner
    sees it go back to `queued` and then succeed."""
    settings = job_settings(
        database_url,
        redis_url,
        new_prefix(),
        job_heartbeat_seconds=1,
        broker_visibility_timeout_seconds=300,
        **broker,
    )
    key = uuid.uuid4().hex
    first = start_worker(settings, workdir, log_name="first.log", concurrency=1)
    try:
        async with running_app(settings) as application, guarded_client(application) as client:
            async with listening(application, alice.id) as events:
                job = await post_job(client, alice, pages.url(f"/hold/{key}"))
                assert await flag(pages.arrived(key)), first.log()
                running = await events.next(
                    "job.updated", lambda d: d["id"] == job["id"] and d["status"] == "running"
                )
                assert running["attempts"] == 1
                first.kill()
                killed_at = time.monotonic()
                pages.release(key)
                second = start_worker(settings, workdir, log_name="second.log")
                try:
                    done = await events.next(
                        "job.updated",
                        lambda d: d["id"] == job["id"] and d["status"] == "succeeded",
                        timeout=60,
                    )
                finally:
                    second.stop()
            assert time.monotonic() - killed_at < 60
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
    """The dead worker's heartbeat stops: the job is queued again within seconds."""
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
        worker = start_worker(settings, tmp_path, log_name="rabbit.log")
        try:
            async with running_app(settings) as application, guarded_client(application) as client:
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
