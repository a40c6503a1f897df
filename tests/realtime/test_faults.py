"""Faults injected into a live two-process deployment: nothing is lost, nothing is doubled.

Each test starts its own Redis (and uses its own database on a private PostgreSQL), two
`parley serve` processes on them, three groups of two users with a socket each (spread over
both processes, resuming by id as the contract says) and a sender per group, then injects
one fault while messages flow. Afterwards every socket must know every message of its
chats — from events, or from the REST refetch that a `resync.required` asks for — with no
event twice and none out of order; no committed send may have answered 5xx, and no request
500. Recovery bounds are asserted where the issue sets them.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from parley.db.migrate import upgrade_to_head
from tests.fixtures.apps import make_settings
from tests.fixtures.services import PrivatePostgres, PrivateRedis
from tests.fixtures.workers import start_worker
from tests.jobs.pageserver import running_page_server
from tests.realtime.conftest import (
    UNAUTHORIZED,
    browser_login,
    cookie_socket,
    frames_until_closed,
    logout_session,
    make_user,
)
from tests.realtime.faultkit import Deployment, Scenario, health, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.timeout(180)]

# Live delivery must resume within this long of Redis answering again.
RECOVERY_BOUND = 5.0
LOAD_BEFORE_FAULT = 1.5
PAUSE_SECONDS = 10.0


@pytest.fixture
def database(private_postgres_db: str) -> str:
    upgrade_to_head(private_postgres_db)
    return private_postgres_db


@dataclass
class Setup:
    deployment: Deployment
    redis: PrivateRedis
    postgres: PrivatePostgres


@pytest.fixture
def setup_factory(
    database: str, private_redis: Any, private_postgres: PrivatePostgres, tmp_path: Path
) -> Iterator[Callable[..., Setup]]:
    made: list[Deployment] = []

    def make(*, appendonly: bool = False) -> Setup:
        redis = private_redis(appendonly=appendonly)
        deployment = Deployment(database, redis.url, tmp_path / "servers")
        made.append(deployment)
        deployment.start()
        return Setup(deployment, redis, private_postgres)

    yield make
    for deployment in made:
        deployment.stop()


async def pubsub_failing(setup: Setup) -> bool:
    reports = [await health(s) for s in setup.deployment.alive()]
    return all(r["checks"]["pubsub"] != "ok" and r["status_code"] == 503 for r in reports)


async def pubsub_healthy(setup: Setup) -> bool:
    reports = [await health(s) for s in setup.deployment.alive()]
    return all(r["checks"]["pubsub"] == "ok" for r in reports)


@asynccontextmanager
async def subscriptions_cut_off(setup: Setup) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Cut every process's pub/sub subscription off, while every other command keeps working
    (Redis ACLs deny subscribing, and the subscriptions are dropped); yields the function
    that lets them subscribe again (called on the way out if the test did not)."""
    admin = redis.from_url(setup.redis.url)
    commands = ("subscribe", "ssubscribe", "psubscribe")
    restored = False

    async def restore() -> None:
        nonlocal restored
        restored = True
        await admin.execute_command("ACL", "SETUSER", "default", *(f"+{c}" for c in commands))

    try:
        await admin.execute_command("ACL", "SETUSER", "default", *(f"-{c}" for c in commands))
        await admin.client_kill_filter(_type="pubsub")
        await wait_until(lambda: pubsub_failing(setup), 10, "health to report pubsub down")
        yield restore
    finally:
        if not restored:
            await restore()
        await admin.aclose()


async def run_with_fault(setup: Setup, fault: Callable[[Setup], Any]) -> Scenario:
    """Load, fault, load again, finish; asserts the contract held."""
    scenario = await Scenario.create(setup.deployment)
    await scenario.start()
    await asyncio.sleep(LOAD_BEFORE_FAULT)  # pacing the load: messages flow before the fault
    await fault(setup)
    sent_at_recovery = scenario.sent()
    await wait_until(lambda: _more_sent(scenario, sent_at_recovery), 20, "sends after the fault")
    await scenario.finish()
    problems = await scenario.problems()
    assert not problems, "\n".join(problems) + "\n" + setup.deployment.logs()[-4000:]
    assert "Traceback" not in setup.deployment.logs()
    print(
        f"sent={scenario.sent()} statuses={[dict(s.statuses) for s in scenario.senders]} "
        f"resyncs={[w.resyncs for w in scenario.watchers]} "
        f"connects={[w.connects for w in scenario.watchers]}"
    )
    return scenario


async def _more_sent(scenario: Scenario, before: int) -> bool:
    return scenario.sent() >= before + 10


async def redis_down_then_back(setup: Setup, stop: Callable[[], None], down_for: float) -> None:
    """Take Redis down, check health says so, bring it back, check recovery is prompt."""
    await asyncio.to_thread(stop)
    await wait_until(lambda: pubsub_failing(setup), 10, "health to report pubsub down")
    await asyncio.sleep(down_for)  # the outage lasts a while under load
    await asyncio.to_thread(setup.redis.start)
    took = await wait_until(lambda: pubsub_healthy(setup), 15, "pubsub to recover")
    assert took < RECOVERY_BOUND, f"live delivery came back after {took:.1f} s"


@pytest.mark.parametrize("appendonly", [False, True], ids=["no-aof", "aof"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_redis_restart_under_load(
    setup_factory: Callable[..., Setup], appendonly: bool, sig: int
) -> None:
    setup = setup_factory(appendonly=appendonly)

    async def fault(s: Setup) -> None:
        await redis_down_then_back(s, lambda: s.redis.stop(sig), down_for=2.0)

    scenario = await run_with_fault(setup, fault)
    if not appendonly:  # Redis lost every log: clients were told to resync, not left behind
        assert all(w.resyncs >= 1 for w in scenario.watchers)


@pytest.mark.parametrize("appendonly", [False, True], ids=["no-aof", "aof"])
async def test_redis_paused_ten_seconds(
    setup_factory: Callable[..., Setup], appendonly: bool
) -> None:
    setup = setup_factory(appendonly=appendonly)

    async def fault(s: Setup) -> None:
        await asyncio.to_thread(s.redis.pause)
        await wait_until(lambda: pubsub_failing(s), 10, "health to report pubsub down")
        await asyncio.sleep(8)  # about ten seconds paused in all
        await asyncio.to_thread(s.redis.resume)
        took = await wait_until(lambda: pubsub_healthy(s), 15, "pubsub to recover")
        assert took < RECOVERY_BOUND

    scenario = await run_with_fault(setup, fault)
    assert all(w.resyncs == 0 for w in scenario.watchers), "nothing was lost: no resync"


@pytest.mark.parametrize("appendonly", [False, True], ids=["no-aof", "aof"])
@pytest.mark.parametrize("fault", ["sigterm", "sigkill", "sigstop"])
async def test_redis_fault_while_the_processes_are_idle(
    setup_factory: Callable[..., Setup], open_socket: Any, fault: str, appendonly: bool
) -> None:
    """Processes that served nobody during the fault deliver to sockets opened after it,
    within the recovery bound, without a restart."""
    setup = setup_factory(appendonly=appendonly)
    idle = setup.deployment.servers[1]
    if fault == "sigstop":
        paused_at = time.monotonic()
        await asyncio.to_thread(setup.redis.pause)
        await wait_until(lambda: pubsub_failing(setup), 10, "health to report pubsub down")
        # The outage itself lasts ten seconds in all, however long noticing it took.
        await asyncio.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - paused_at)))
        await asyncio.to_thread(setup.redis.resume)
    else:
        stop = signal.SIGTERM if fault == "sigterm" else signal.SIGKILL
        await asyncio.to_thread(setup.redis.stop, stop)
        await wait_until(lambda: pubsub_failing(setup), 10, "health to report pubsub down")
        await asyncio.to_thread(setup.redis.start)
    took = await wait_until(lambda: pubsub_healthy(setup), 15, "pubsub to recover")
    assert took < RECOVERY_BOUND, f"live delivery came back after {took:.1f} s"
    alice = await make_user(setup.deployment.servers[0], "alice")
    bob = await make_user(setup.deployment.servers[0], "bob")
    chat_id = await alice.group(bob)
    bob_ws = await open_socket(idle, bob)
    for n in range(20):
        sent = await alice.send(chat_id, f"after the restart {n}")
        assert (await bob_ws.next_of("message.created"))["data"]["id"] == sent["id"]


async def test_a_socket_opened_during_an_outage_is_told_to_come_back(
    setup_factory: Callable[..., Setup],
) -> None:
    setup = setup_factory()
    server = setup.deployment.servers[0]
    alice = await make_user(server, "alice")
    await asyncio.to_thread(setup.redis.stop)
    await wait_until(lambda: pubsub_failing(setup), 10, "health to report pubsub down")
    async with connect(f"{server.ws}?token={alice.token}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code in (1011, 1013)
    assert "Traceback" not in server.log()


async def test_a_sign_out_missed_by_a_cut_off_subscription_closes_its_sockets_later(
    setup_factory: Callable[..., Setup],
) -> None:
    """The notice that closes a browser session's sockets travels on pub/sub: a process whose
    subscription is cut off (Redis dropping a slow subscriber, a partition) misses it while
    Redis itself keeps working. When the process subscribes again it asks the database about
    its cookie sockets before refilling them from the log: the signed-out one closes without
    being given what was sent meanwhile, and the other browser's gets it."""
    setup = setup_factory()
    server = setup.deployment.servers[0]
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    chat_id = await alice.group(bob)
    leaving, csrf = await browser_login(server, "alice")
    staying, _ = await browser_login(server, "alice")
    signed_out = await cookie_socket(server, leaving)
    still_in = await cookie_socket(server, staying)
    try:
        async with subscriptions_cut_off(setup) as subscribe_again:
            await logout_session(server, leaving, csrf)  # published, and heard by no process
            meanwhile = await bob.send(chat_id, "sent while nobody listened")  # in the logs
            await subscribe_again()
        await wait_until(lambda: pubsub_healthy(setup), 15, "pubsub to recover")

        frames, code = await frames_until_closed(signed_out)
        assert code == UNAUTHORIZED
        assert [f for f in frames if f["type"] == "message.created"] == []
        assert (await still_in.next_of("message.created"))["data"]["id"] == meanwhile["id"]
        sent = await bob.send(chat_id, "still with us?")
        assert (await still_in.next_of("message.created"))["data"]["id"] == sent["id"]
    finally:
        await signed_out.close()
        await still_in.close()


async def test_a_database_that_hangs_after_a_gap_holds_the_cookie_sockets_back_briefly(
    setup_factory: Callable[..., Setup],
) -> None:
    """After a gap in live delivery the sockets opened by a browser session wait for the
    database to say their session still lives; a database that does not answer then (here
    a lock on the sessions' table, as a long migration would hold) must not keep them from
    their events for more than a few seconds."""
    setup = setup_factory()
    server = setup.deployment.servers[0]
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    chat_id = await alice.group(bob)
    cookie, _ = await browser_login(server, "alice")
    sock = await cookie_socket(server, cookie)
    engine = create_async_engine(setup.deployment.database_url)
    try:
        async with subscriptions_cut_off(setup) as subscribe_again:
            sent = await bob.send(chat_id, "in the logs before the database hung")
            async with engine.connect() as locker:
                await locker.execute(text("LOCK TABLE browser_sessions IN ACCESS EXCLUSIVE MODE"))
                await subscribe_again()
                got = await sock.next_of("message.created", timeout=15)
                assert got["data"]["id"] == sent["id"]
                await locker.rollback()
    finally:
        await sock.close()
        await engine.dispose()
    assert "could not check the browser sessions of sockets" in server.log()


async def test_a_server_process_killed_under_load(setup_factory: Callable[..., Setup]) -> None:
    setup = setup_factory()

    async def fault(s: Setup) -> None:
        s.deployment.servers[0].stop(signal.SIGKILL)

    await run_with_fault(setup, fault)


async def test_postgresql_fast_restart_under_load(setup_factory: Callable[..., Setup]) -> None:
    setup = setup_factory()

    async def fault(s: Setup) -> None:
        await asyncio.to_thread(s.postgres.stop, "fast")
        await asyncio.sleep(1.0)  # the database is away for a moment under load
        await asyncio.to_thread(s.postgres.start)

    scenario = await run_with_fault(setup, fault)
    assert all(s.statuses.get(500, 0) == 0 for s in scenario.senders)


async def test_every_route_answers_503_while_postgresql_is_down(
    setup_factory: Callable[..., Setup],
) -> None:
    """Never a 500: each kind of route says 503 with Retry-After, then works again."""
    setup = setup_factory()
    server = setup.deployment.servers[0]
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    chat_id = await alice.group(bob)
    await asyncio.to_thread(setup.postgres.stop, "fast")
    requests = [
        ("POST", "/auth/register", {"json": {"username": "carol", "password": "x" * 12}}),
        ("POST", "/auth/token", {"data": {"username": "alice", "password": "x" * 12}}),
        ("GET", "/users/me", {}),
        ("GET", "/chats", {}),
        ("POST", f"/chats/{chat_id}/messages", {"json": {"text": "while the db is down"}}),
        ("GET", f"/chats/{chat_id}/messages", {}),
        ("POST", "/jobs/parse", {"json": {"url": "http://example.com/"}}),
    ]
    try:
        for method, path, kwargs in requests:
            resp = await alice.client.request(method, f"/api/v1{path}", **kwargs)
            assert resp.status_code == 503, (path, resp.status_code, resp.text)
            assert resp.headers.get("retry-after"), path
        async with connect(f"{server.ws}?token={alice.token}") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code in (1011, 1013)
    finally:
        await asyncio.to_thread(setup.postgres.start)
    sent = await alice.send(chat_id, "the database is back")
    assert sent["text"] == "the database is back"
    assert "Traceback" not in server.log()


async def test_a_killed_worker_s_job_resumes_and_its_owner_sees_each_step(
    setup_factory: Callable[..., Setup], open_socket: Any, tmp_path: Path
) -> None:
    """kill -9 of a whole `parley worker` mid-job: the job runs again within 60 s (its
    heartbeat stopped), and every change reaches the owner's socket as `job.updated`."""
    setup = setup_factory()
    server = setup.deployment.servers[1]
    alice = await make_user(server, "alice")
    settings = make_settings(
        setup.deployment.database_url,
        setup.redis.url,
        fetch_allow_private=True,
        job_heartbeat_seconds=1.0,  # as the servers, whose relay requeues the job
    )
    key = uuid.uuid4().hex
    with running_page_server() as pages:
        first = start_worker(settings, tmp_path, log_name="doomed.log", concurrency=1)
        try:
            sock = await open_socket(server, alice)
            job = await alice.post("/jobs/parse", json={"url": pages.url(f"/hold/{key}")})
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
            assert await asyncio.to_thread(pages.arrived(key).wait, 30), first.log()
            first.kill()
            pages.release(key)
            killed_at = time.monotonic()
            second = start_worker(settings, tmp_path, log_name="survivor.log")
            try:
                statuses = []
                while not statuses or statuses[-1] != "succeeded":
                    frame = await sock.next_of("job.updated", timeout=60)
                    if frame["data"]["id"] == job_id:
                        statuses.append(frame["data"]["status"])
            finally:
                second.stop()
        finally:
            first.kill()
    assert time.monotonic() - killed_at < 60
    assert statuses[0] == "queued"
    assert "running" in statuses
    assert statuses[statuses.index("running") :].count("queued") >= 1, statuses
