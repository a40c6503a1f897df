"""A server told to stop closes its sockets with 1001 so that clients resume elsewhere."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.realtime.conftest import make_user, server_env
from tests.servers import start_server


async def test_sigterm_closes_sockets_with_going_away(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> None:
    server = start_server(server_env(database_url, redis_url), tmp_path)
    try:
        alice = await make_user(server, "alice")
        async with connect(f"{server.ws}?token={alice.token}") as ws:
            assert '"type":"ready"' in await asyncio.wait_for(ws.recv(), 10)
            await ws.send('{"type":"ping"}')
            assert await asyncio.wait_for(ws.recv(), 10) == '{"type":"pong"}'
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert await asyncio.to_thread(server.process.wait, 30) in (0, -signal.SIGTERM)
    finally:
        server.stop()
