"""Against real `parley serve` processes (two in services mode): refreshes racing across
processes, and logs at info level that never carry a token."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import MODE
from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.fixtures.users import register


@pytest.fixture(scope="module")
def servers(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Servers logging at info level, unbuffered, so that their log can be read at once."""
    workdir: Path = tmp_path_factory.mktemp("live")
    env = server_env(database_url, redis_url, PARLEY_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    started = [start_server(env, workdir) for _ in range(2 if MODE == "services" else 1)]
    yield started
    for server in started:
        server.stop()


async def test_refreshes_racing_across_processes_share_one_successor(
    servers: list[ServerProcess],
) -> None:
    clients = [httpx.AsyncClient(base_url=s.http, timeout=15) for s in servers]
    try:
        pair = await register(clients[0], "alice")
        answers = await asyncio.gather(
            *(
                clients[i % len(clients)].post(
                    "/api/v1/auth/refresh", json={"refreshToken": pair.refresh_token}
                )
                for i in range(6)
            )
        )
        assert Counter(r.status_code for r in answers) == {200: 6}, [r.text for r in answers]
        (successor,) = {r.json()["refresh_token"] for r in answers}
        onward = await clients[-1].post("/api/v1/auth/refresh", json={"refreshToken": successor})
        assert onward.status_code == 200
    finally:
        for c in clients:
            await c.aclose()


async def test_no_token_reaches_the_log(servers: list[ServerProcess]) -> None:
    server = servers[0]
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as http:
        pair = await register(http, "bob")
        access, refresh = pair.access_token, pair.refresh_token
        async with connect(f"{server.ws}?token={access}&lastEventId=0") as ws:
            await ws.send('{"type":"ping"}')
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "pong":
                pass
        refused = "not-a-token-but-secret-looking-1234567890"
        with pytest.raises(ConnectionClosed):
            async with connect(f"{server.ws}?token={refused}") as ws:
                await asyncio.wait_for(ws.recv(), 10)
        await http.get(f"/api/v1/health/live?access_token={refresh}&code=code-1234567890")
        await http.post("/api/v1/auth/refresh", json={"refreshToken": refresh})
    log = server.log()
    # The lines were written (the WebSocket URLs are logged), with the tokens taken out.
    assert "/api/v1/ws?token=[redacted]&lastEventId=0" in log
    for secret in (access, refresh, refused, "code-1234567890"):
        assert secret not in log
