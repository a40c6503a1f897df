"""Typing, presence, ping and malformed client frames."""

from __future__ import annotations

from typing import Any

from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import make_user


async def test_typing_goes_to_the_other_members_only(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    carol = await make_user(server_a, "carol")
    chat_id = await alice.group(bob)
    await carol.group(alice, title="carol and alice")
    alice_ws = await open_socket(server_a, alice)
    bob_ws = await open_socket(server_b, bob)
    carol_ws = await open_socket(server_b, carol)

    await alice_ws.send({"type": "typing", "chatId": chat_id})
    typing = await bob_ws.next_of("typing")
    assert typing == {
        "type": "typing",
        "ts": typing["ts"],
        "data": {"chatId": chat_id, "userId": alice.id},
    }
    assert "id" not in typing

    # Neither alice herself nor carol (not in that chat) sees it: their next frame is a pong.
    for sock in (alice_ws, carol_ws):
        await sock.send({"type": "ping"})
        assert (await sock.next_of("typing", "pong"))["type"] == "pong"


async def test_typing_in_a_chat_you_are_not_in_is_refused(
    server_a: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    carol = await make_user(server_a, "carol")
    carol_ws = await open_socket(server_a, carol)
    bob_ws = await open_socket(server_a, bob)
    # Each time: a chat not found is not typed in, so not held back as a repeat either.
    for _ in range(2):
        await carol_ws.send({"type": "typing", "chatId": chat_id})
    await carol_ws.send({"type": "ping"})
    for _ in range(2):
        answer = await carol_ws.next_of("error", "pong")
        assert answer == {"type": "error", "detail": "chat not found"}
    await bob_ws.send({"type": "ping"})
    assert (await bob_ws.next_of("typing", "pong"))["type"] == "pong"


async def test_typing_in_a_chat_id_out_of_range_is_refused(
    server_a: ServerProcess, open_socket: Any
) -> None:
    """An id no chat can have (beyond the 2**53 - 1 that REST routes accept, or beyond what
    the database's integers hold) is answered as a chat that does not exist."""
    alice = await make_user(server_a, "alice")
    sock = await open_socket(server_a, alice)
    for chat_id in (2**53, 2**63, 10**25, -(2**63) - 1):
        await sock.send({"type": "typing", "chatId": chat_id})
        await sock.send({"type": "ping"})
        answer = await sock.next_of("error", "pong")
        assert answer == {"type": "error", "detail": "chat not found"}, chat_id
        assert await sock.next_of("error", "pong") == {"type": "pong"}
    assert "Traceback" not in server_a.log()


async def test_presence_online_on_first_socket_offline_after_last(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    await alice.group(bob)
    bob_ws = await open_socket(server_a, bob)

    first = await open_socket(server_a, alice)
    online = await bob_ws.next_of("presence")
    assert online["data"] == {"userId": alice.id, "status": "online"}
    assert "id" not in online

    second = await open_socket(server_b, alice)
    # The handshake can finish before the server counts the socket; it answers pings only
    # after (otherwise closing the first socket could still look like the last one leaving).
    await second.send({"type": "ping"})
    await second.next_of("pong")
    await first.close()
    await bob_ws.send({"type": "ping"})
    assert (await bob_ws.next_of("presence", "pong"))["type"] == "pong", (
        "a second device joining or one of two leaving changes nothing"
    )

    await second.close()
    offline = await bob_ws.next_of("presence")
    assert offline["data"] == {"userId": alice.id, "status": "offline"}


async def test_ping_pong_and_bad_frames(server_a: ServerProcess, open_socket: Any) -> None:
    alice = await make_user(server_a, "alice")
    sock = await open_socket(server_a, alice)
    await sock.ws.send("not json")
    assert (await sock.next())["type"] == "error"
    await sock.ws.send("[1, 2]")
    assert (await sock.next())["type"] == "error"
    await sock.send({"type": "typing", "chatId": "x"})
    assert (await sock.next())["type"] == "error"
    await sock.send({"type": "nonsense"})
    assert (await sock.next())["type"] == "error"
    await sock.ws.send("x" * 10_000)
    assert (await sock.next())["type"] == "error"
    await sock.send({"type": "ping"})
    assert await sock.next() == {"type": "pong"}
