"""What an operator watches, in both modes: queue depth and job outcomes, open sockets and
events on `/metrics`, the one JSON line per request, readable logs on a terminal, and
`parley worker --check` where there is no worker to check."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.ops.metrics import QUEUE_DEPTH
from tests.conftest import MODE
from tests.fixtures.apps import TEST_SECRET, running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.servers import ServerProcess, free_port, server_env, start_server
from tests.fixtures.users import register
from tests.fixtures.workers import WorkerProcess, start_worker
from tests.jobs.conftest import (
    job_settings,
    listening,
    new_prefix,
    post_job,
    wait_for,
    wait_job,
)
from tests.jobs.pageserver import PageServer, running_page_server
from tests.ops.procs import (
    json_lines,
    metrics_port,
    run_check,
    sample,
    scrape,
    unique_node,
    wait_until_ready,
)
from tests.realtime.conftest import make_user

OUTCOMES = "parley_jobs_finished_total"
DEPTH = "parley_job_queue_depth"


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with running_page_server() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One `parley serve` process logging JSON at INFO."""
    env = server_env(database_url, redis_url, PARLEY_LOG_LEVEL="INFO")
    process = start_server(env, tmp_path_factory.mktemp("ops-server"))
    yield process
    process.stop()


async def poll_metrics(url: str, name: str, labels: dict[str, str], expected: float) -> str:
    """Scrape until the sample has the expected value (it changes in another task/process)."""
    deadline = time.monotonic() + 30
    while True:
        text = await scrape(url)
        if sample(text, name, labels) == expected:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} never became {expected}:\n{text}")
        await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
async def test_jobs_waiting_behind_a_busy_worker_and_their_outcomes(
    database_url: str, redis_url: str | None, pages: PageServer, tmp_path: Path
) -> None:
    """One job slot, held by a parse job; two link previews wait in the broker for it.

    Embedded: the in-process worker and the in-memory broker, outcomes on the app's
    `/metrics`. Services: a `parley worker` on Redis, outcomes on its `--metrics-port`.
    """
    settings = job_settings(database_url, redis_url, new_prefix(), worker_concurrency=1)
    worker: WorkerProcess | None = None
    outcomes_url: str | None = None
    if MODE == "services":
        port = metrics_port()
        worker = start_worker(
            settings,
            tmp_path,
            name=unique_node(),
            concurrency=1,
            metrics_port=port,
            PARLEY_LOG_FORMAT="json",
        )
        outcomes_url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with running_app(settings) as application, guarded_client(application) as client:
            if worker is not None:
                await wait_until_ready(worker)

            async def outcomes() -> str:
                if outcomes_url is not None:
                    return await scrape(outcomes_url)
                return (await client.get("/metrics")).text

            async def depth(queue: str) -> float:
                return sample((await client.get("/metrics")).text, DEPTH, {"queue": queue})

            before = await outcomes()
            alice = await register(client, "alice")
            key = uuid.uuid4().hex
            held = await post_job(client, alice, pages.url(f"/hold/{key}"))
            assert await asyncio.to_thread(pages.arrived(key).wait, 60), "the job never ran"

            chat = await client.post(
                "/api/v1/chats", json={"type": "group", "title": "ops"}, headers=alice.headers
            )
            links = [pages.url(f"/page/{key}-{n}") for n in (1, 2)]
            async with listening(application, alice.id) as events:
                sent = await client.post(
                    f"/api/v1/chats/{chat.json()['id']}/messages",
                    json={"text": f"see {links[0]} and {links[1]}"},
                    headers=alice.headers,
                )
                assert sent.status_code == 201, sent.text
                assert await depth("previews") == 2  # the only slot is busy: both wait

                pages.release(key)
                done = await wait_job(client, alice, held["id"])
                assert done["status"] == "succeeded"
                await events.next(
                    "message.updated",
                    lambda d: all(p["status"] == "ready" for p in d["previews"]),
                )
            assert await depth("previews") == 0

            async def counted() -> str | None:
                text = await outcomes()
                gained = {
                    kind: sample(text, OUTCOMES, {"kind": kind, "status": "succeeded"})
                    - sample(before, OUTCOMES, {"kind": kind, "status": "succeeded"})
                    for kind in ("parse", "preview")
                }
                return text if gained == {"parse": 1, "preview": 2} else None

            text = await wait_for(counted, what="the job outcomes on /metrics")
            assert f"# TYPE {OUTCOMES} counter" in text
    finally:
        if worker is not None:
            worker.stop()


async def test_queue_depth_is_dropped_while_the_broker_is_down(database_url: str) -> None:
    """No figure rather than a stale one, or a reassuring 0, when the broker does not answer."""
    settings = job_settings(database_url, None, new_prefix(), broker_url="redis://127.0.0.1:1/0")
    QUEUE_DEPTH.labels("parse").set(7)  # what an earlier scrape may have left
    async with (
        running_app(settings) as application,
        guarded_client(application, allow={503}) as client,
    ):
        resp = await client.get("/metrics")
        health = await client.get("/api/v1/health")
    assert resp.status_code == 200
    assert f"# TYPE {DEPTH} gauge" in resp.text
    assert f"{DEPTH}{{" not in resp.text
    assert health.status_code == 503
    assert health.json()["checks"]["broker"] != "ok"


async def test_open_sockets_and_events_are_counted(server: ServerProcess) -> None:
    metrics = f"{server.http}/metrics"
    alice = await make_user(server, f"alice{uuid.uuid4().hex[:6]}")
    bob = await make_user(server, f"bob{uuid.uuid4().hex[:6]}")
    chat_id = await alice.group(bob)
    try:
        before = await poll_metrics(metrics, "parley_ws_connections", {}, 0)
        from websockets.asyncio.client import connect

        async with connect(f"{server.ws}?token={bob.token}") as ws:
            during = await poll_metrics(metrics, "parley_ws_connections", {}, 1)
            sent = await alice.send(chat_id, "counted")
            async with asyncio.timeout(15):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "message.created":
                        break
            assert frame["data"]["id"] == sent["id"]
            after = await scrape(metrics)
        await poll_metrics(metrics, "parley_ws_connections", {}, 0)
    finally:
        await alice.client.aclose()
        await bob.client.aclose()

    published = {"type": "message.created"}
    # One per recipient: the author and bob.
    assert (
        sample(after, "parley_events_published_total", published)
        - sample(before, "parley_events_published_total", published)
        == 2
    )
    delivered = "parley_events_delivered_total"
    assert sample(after, delivered, {}) - sample(during, delivered, {}) >= 1
    assert "# TYPE parley_ws_connections gauge" in after


async def test_one_json_line_per_request_with_its_id(server: ServerProcess) -> None:
    alice = await make_user(server, f"alice{uuid.uuid4().hex[:6]}")
    request_id = f"ops-{uuid.uuid4().hex}"
    try:
        chat_id = await alice.group()
        resp = await alice.client.get(
            f"/api/v1/chats/{chat_id}", headers={"X-Request-ID": request_id}
        )
        assert resp.status_code == 200
        assert resp.headers["x-request-id"] == request_id
    finally:
        await alice.client.aclose()

    async def logged() -> list[dict[str, Any]]:
        return [line for line in json_lines(server.log()) if line.get("request_id") == request_id]

    (line,) = await wait_for(logged, what="the request's log line")
    assert line["event"] == "request"
    assert line["logger"] == "parley.access"
    assert (line["method"], line["route"], line["status"]) == (
        "GET",
        "/api/v1/chats/{chat_id}",
        200,
    )
    assert line["path"] == f"/api/v1/chats/{chat_id}"
    assert isinstance(line["duration_ms"], float | int)
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def read_pty(fd: int, until: bytes, timeout: float = 120) -> bytes:
    """Read a pseudo-terminal until `until` appears (or the deadline passes)."""
    out = b""
    deadline = time.monotonic() + timeout
    while until not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.timeout(180)
def test_development_logs_are_readable_on_a_terminal(database_url: str, tmp_path: Path) -> None:
    """With the default `PARLEY_LOG_FORMAT=auto`, a terminal gets coloured key=value lines."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(
        PARLEY_ENV="development",
        PARLEY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}",
        PARLEY_SECRET_KEY=TEST_SECRET,
        TERM="xterm",
    )
    main, replica = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=replica,
        stderr=replica,
    )
    os.close(replica)
    try:
        deadline = time.monotonic() + 120
        while True:  # another process's readiness: poll
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health/live").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health/live", headers={"X-Request-ID": "dev1"})
        output = read_pty(main, b"dev1")
    finally:
        process.terminate()
        process.wait(30)
        os.close(main)
    text = output.decode(errors="replace")
    line = next(line for line in text.splitlines() if "dev1" in line)
    assert not line.lstrip().startswith("{"), line
    assert "\x1b[" in line  # coloured
    for part in ("request", "route", "/api/v1/health/live"):
        assert part in line


def test_worker_check_without_a_broker_says_there_is_no_worker(
    database_url: str, tmp_path: Path
) -> None:
    settings = job_settings(database_url, None, new_prefix())
    done = run_check(settings)
    assert done.returncode == 2
    assert "needs a broker" in done.stderr
    assert done.stdout == ""
