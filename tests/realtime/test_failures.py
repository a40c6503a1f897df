"""Dead peers are dropped; a Redis restart mid-session loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.realtime.conftest import make_user, server_env
from tests.realtime.test_backpressure import _handshake_then_stall
from tests.servers import ServerProcess, free_port, start_server


@pytest.fixture
def fast_heartbeat_server(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> Iterator[ServerProcess]:
    server = start_server(
        server_env(database_url, redis_url, PARLEY_WS_HEARTBEAT_SECONDS="1"), tmp_path
    )
    yield server
    server.stop()


async def test_a_peer_that_stops_answering_pings_is_dropped(
    fast_heartbeat_server: ServerProcess, open_socket: Any
) -> None:
    server = fast_heartbeat_server
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    await alice.group(bob)
    bob_ws = await open_socket(server, bob)

    dead = await asyncio.to_thread(_handshake_then_stall, server.port, alice.token)
    try:
        online = await bob_ws.next_of("presence")
        assert online["data"] == {"userId": alice.id, "status": "online"}
        # Alice's socket never answers the server's pings: it is dropped, and she goes offline.
        offline = await bob_ws.next_of("presence", timeout=15)
        assert offline["data"] == {"userId": alice.id, "status": "offline"}
    finally:
        dead.close()


class RedisServer:
    """A private redis-server this test may kill and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            )
            if probe.stdout.strip() == b"PONG":
                return
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path)
    redis.start()
    yield redis
    redis.kill()


async def _wait_healthy(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as c:
        async with asyncio.timeout(30):
            # Polling another process's readiness endpoint: there is no event to await.
            while (await c.get("/api/v1/health")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.1)


@pytest.mark.services_only
async def test_redis_restart_during_a_session_loses_nothing(
    database_url: str, private_redis: RedisServer, tmp_path: Path, open_socket: Any
) -> None:
    server = start_server(server_env(database_url, private_redis.url), tmp_path / "srv")
    try:
        alice = await make_user(server, "alice")
        bob = await make_user(server, "bob")
        chat_id = await alice.group(bob)
        bob_ws = await open_socket(server, bob)
        before = await alice.send(chat_id, "before the restart")
        seen = await bob_ws.next_of("message.created")
        assert seen["data"]["id"] == before["id"]

        private_redis.kill()
        private_redis.start()  # same port, empty: every stream is gone
        await _wait_healthy(server)

        # The open socket recovers: it is told to resync (its log is gone), then goes on live.
        assert (await bob_ws.next_of("resync.required"))["type"] == "resync.required"
        after = await alice.send(chat_id, "after the restart")
        assert (await bob_ws.next_of("message.created"))["data"]["id"] == after["id"]

        # A client resuming from before the restart is told to resync, and REST has it all.
        resumed = await open_socket(server, bob, f"lastEventId={seen['id']}")
        assert (await resumed.next())["type"] == "resync.required"
        history = await bob.client.get(f"/api/v1/chats/{chat_id}/messages")
        assert [m["id"] for m in history.json()["items"]] == [after["id"], before["id"]]
    finally:
        server.stop()


@pytest.mark.services_only
async def test_health_names_redis_when_it_is_down(
    database_url: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    server = start_server(server_env(database_url, private_redis.url), tmp_path / "srv")
    try:
        async with httpx.AsyncClient(base_url=server.http, timeout=15) as c:
            healthy = await c.get("/api/v1/health")
            assert healthy.status_code == 200
            assert healthy.json()["checks"]["pubsub"] == "ok"

            private_redis.kill()
            down = await c.get("/api/v1/health")
            assert down.status_code == 503
            checks = down.json()["checks"]
            assert checks["database"] == "ok"
            assert checks["pubsub"] != "ok"
            assert "Connection" in checks["pubsub"] or "connect" in checks["pubsub"]
            assert (await c.get("/api/v1/health/live")).status_code == 200

            private_redis.start()
        await _wait_healthy(server)
    finally:
        server.stop()
