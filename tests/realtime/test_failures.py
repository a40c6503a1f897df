"""Dead peers are dropped (Redis and PostgreSQL faults: test_faults.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtime.conftest import make_user, server_env
from tests.realtime.test_backpressure import _handshake_then_stall
from tests.servers import ServerProcess, start_server


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
