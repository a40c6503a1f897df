"""A server told to stop closes its sockets with 1001 so that clients resume elsewhere."""

from __future__ import annotations

import asyncio
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.realtime.conftest import ServerWith, make_user


async def test_sigterm_closes_sockets_with_going_away(server_with: ServerWith) -> None:
    server = server_with()
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
