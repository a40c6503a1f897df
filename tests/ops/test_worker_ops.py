"""`parley worker` as operations see it: JSON lines naming the task and the job, the health
check compose runs, and queue depth on `/metrics` for Redis and RabbitMQ brokers."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from parley.jobs.service import PARSE_TASK
from parley.settings import Settings
from tests.conftest import delete_bus_keys, truncate_all
from tests.fixtures.apps import TEST_SECRET, running_app
from tests.fixtures.commands import run_parley
from tests.fixtures.http import guarded_client
from tests.fixtures.users import Account, register
from tests.fixtures.workers import WorkerProcess, start_worker
from tests.jobs.brokers import rabbitmq_vhost
from tests.jobs.conftest import (
    job_settings,
    new_prefix,
    post_job,
    wait_job,
)
from tests.jobs.pageserver import PageServer, running_page_server
from tests.ops.procs import (
    json_lines,
    run_check,
    sample,
    unique_node,
    wait_for_lines,
    wait_until_ready,
)

pytestmark = [
    pytest.mark.services_only,
    pytest.mark.timeout(240),
]

REPO = Path(__file__).resolve().parents[2]
TASK_IN_TEXT = re.compile(r"\[([0-9a-f-]{36})\]")


@pytest.fixture(autouse=True)
async def _empty_tables(database_url: str, redis_url: str | None) -> AsyncIterator[None]:
    """Empty the tables after each test but keep the broker's keys: this module's worker
    outlives a test, and its queue bindings live in Redis."""
    yield
    await truncate_all(database_url)
    if redis_url:
        await delete_bus_keys(redis_url)


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with running_page_server() as server:
        yield server


@pytest.fixture(scope="module")
def ops_settings(database_url: str, redis_url: str | None) -> Settings:
    return job_settings(database_url, redis_url, new_prefix())


@pytest.fixture(scope="module")
def node() -> str:
    return unique_node()


@pytest.fixture(scope="module")
async def worker(
    ops_settings: Settings, node: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """A worker as the image runs it: production settings, the default (auto) log format."""
    process = start_worker(
        ops_settings,
        tmp_path_factory.mktemp("ops-worker"),
        name=node,
        PARLEY_ENV="production",
        PARLEY_LOG_FORMAT="auto",
        PARLEY_SECRET_KEY=TEST_SECRET,
    )
    try:
        await wait_until_ready(process)
        yield process
    finally:
        process.stop()


@pytest.fixture
async def client(ops_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(ops_settings) as application, guarded_client(application) as c:
        yield c


async def test_worker_lines_are_json_and_name_their_task_and_job(
    worker: WorkerProcess, client: httpx.AsyncClient, pages: PageServer
) -> None:
    alice = await register(client, "alice")
    key = uuid.uuid4().hex
    ok = await post_job(client, alice, pages.url(f"/page/{key}"))
    flaky = await post_job(client, alice, pages.url(f"/flaky/1/{key}"))  # fails once, retried
    assert (await wait_job(client, alice, ok["id"]))["status"] == "succeeded"
    done = await wait_job(client, alice, flaky["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2)

    def finished(lines: list[dict[str, Any]]) -> bool:
        succeeded = {
            line.get("job_id") for line in lines if " succeeded in " in str(line.get("event"))
        }
        return {ok["id"], flaky["id"]} <= succeeded

    lines = await wait_for_lines(worker, finished, what="both jobs' succeeded lines")
    assert all({"event", "level", "logger", "timestamp"} <= line.keys() for line in lines)

    # Every line about a task names it, with the task id Celery shows in its own text.
    for line in lines:
        shown = TASK_IN_TEXT.search(str(line["event"]))
        if shown:
            assert line.get("task_id") == shown.group(1), line
        if line.get("task_name") == PARSE_TASK:
            assert isinstance(line.get("job_id"), int), line

    def of_job(job_id: int) -> list[dict[str, Any]]:
        return [line for line in lines if line.get("job_id") == job_id]

    for job in (ok, flaky):
        events = " | ".join(str(line["event"]) for line in of_job(job["id"]))
        assert " received" in events, events
        assert " succeeded in " in events, events
        task_ids = {line["task_id"] for line in of_job(job["id"])}
        assert all(re.fullmatch(r"[0-9a-f-]{36}", t) for t in task_ids)

    # The failed first attempt: logged by the job code on the worker's event loop, which
    # inherits the fields bound around the task; the retry is a task of its own (enqueued
    # through the outbox with the job's new state), received later.
    flaky_lines = of_job(flaky["id"])
    attempt = [line for line in flaky_lines if line["event"] == "job attempt failed"]
    assert attempt, flaky_lines
    assert attempt[0]["logger"].startswith("parley.jobs")
    assert attempt[0]["task_id"]
    assert attempt[0]["task_name"] == PARSE_TASK
    received = {line["task_id"] for line in flaky_lines if " received" in str(line["event"])}
    assert len(received) == 2, flaky_lines

    # Fields are unbound when a task ends: one job per task id, and nothing of a parse job
    # leaks into the lines of other tasks the same processes run.
    jobs_of_task: dict[str, set[int]] = {}
    for line in lines:
        if line.get("task_name") == PARSE_TASK:
            jobs_of_task.setdefault(line["task_id"], set()).add(line["job_id"])
        elif "task_id" in line:
            assert "job_id" not in line, line
    assert all(len(ids) == 1 for ids in jobs_of_task.values()), jobs_of_task


async def test_worker_check_passes_for_a_live_worker(
    worker: WorkerProcess, ops_settings: Settings, node: str
) -> None:
    done = run_check(ops_settings, "--name", node, "--timeout", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    assert " ok " in lines[0]
    assert node.replace("%h", "") in lines[0]


async def test_the_compose_healthcheck_follows_the_worker(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> None:
    """deploy/compose.yaml's worker healthcheck, run as Docker would, against a worker with
    the default node name, alone on a fresh RabbitMQ virtual host: healthy while it runs,
    unhealthy once it stopped."""
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    test = compose["services"]["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "parley"], test
    with rabbitmq_vhost() as url:
        settings = job_settings(database_url, redis_url, new_prefix(), broker_url=url)
        worker = start_worker(settings, tmp_path, name=None, PARLEY_LOG_FORMAT="json")
        try:
            await wait_until_ready(worker)
            healthy = run_parley(settings, *test[2:])
            assert healthy.returncode == 0, healthy.stdout + healthy.stderr
            assert f"celery@{socket.gethostname()}: ok" in healthy.stdout
        finally:
            assert worker.stop() == 0, worker.log()
        unhealthy = run_parley(settings, *test[2:])
    assert unhealthy.returncode == 1, unhealthy.stdout + unhealthy.stderr
    assert "no answer" in unhealthy.stdout


async def test_worker_check_fails_when_no_worker_answers(ops_settings: Settings) -> None:
    done = run_check(ops_settings, "--name", unique_node(), "--timeout", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no answer within 2 s" in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


async def test_worker_check_fails_when_the_broker_is_down(database_url: str) -> None:
    settings = job_settings(database_url, None, new_prefix(), broker_url="redis://127.0.0.1:1/0")
    done = run_check(settings, "--timeout", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "broker unavailable" in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


async def queue_depth(client: httpx.AsyncClient, queue: str) -> float:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    return sample(resp.text, "parley_job_queue_depth", {"queue": queue})


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
async def test_queue_depth_counts_jobs_waiting_for_a_worker(
    database_url: str, redis_url: str | None, pages: PageServer, tmp_path: Path, broker: str
) -> None:
    async def scenario(settings: Settings) -> None:
        async with running_app(settings) as application, guarded_client(application) as client:
            alice: Account = await register(client, "alice")
            assert await queue_depth(client, "parse") == 0
            key = uuid.uuid4().hex
            jobs = [await post_job(client, alice, pages.url(f"/page/{key}-{i}")) for i in range(3)]
            # Nobody consumes these queues yet: all three wait in the broker.
            assert await queue_depth(client, "parse") == 3
            assert await queue_depth(client, "previews") == 0
            worker = start_worker(
                settings, tmp_path, name=unique_node(), concurrency=2, PARLEY_LOG_FORMAT="json"
            )
            try:
                for job in jobs:
                    assert (await wait_job(client, alice, job["id"], timeout=90))[
                        "status"
                    ] == "succeeded", worker.log()
                assert await queue_depth(client, "parse") == 0
                json_lines(worker.log())  # its output is JSON lines too
            finally:
                worker.stop()

    if broker == "redis":
        await scenario(job_settings(database_url, redis_url, new_prefix()))
    else:
        with rabbitmq_vhost() as url:
            await scenario(job_settings(database_url, redis_url, new_prefix(), broker_url=url))
