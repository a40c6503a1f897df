"""Dead peers are dropped (Redis and PostgreSQL faults: test_faults.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.realtime.conftest import ServerWith, make_user
from tests.realtime.test_backpressure import _handshake_then_stall


async def test_a_peer_that_stops_answering_pings_is_dropped(
    server_with: ServerWith, open_socket: Any
) -> None:
    server = server_with(PARLEY_WS_HEARTBEAT_SECONDS="1")
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
