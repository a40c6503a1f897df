"""Live delivery: every member, every device, every process, and nobody else."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.apps import TEST_SECRET
from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import make_user


async def _closed_with(url: str, **kwargs: Any) -> int | None:
    """Connect and return the close code the server sends before any event."""
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_unauthenticated_sockets_are_closed_with_4401(server_a: ServerProcess) -> None:
    assert await _closed_with(server_a.ws) == 4401
    assert await _closed_with(f"{server_a.ws}?token=not-a-jwt") == 4401
    forged = jwt.encode({"sub": "1", "iss": "parley", "typ": "access", "exp": 4102444800}, "x" * 40)
    assert await _closed_with(f"{server_a.ws}?token={forged}") == 4401
    expired = jwt.encode(
        {"sub": "1", "iss": "parley", "typ": "access", "exp": 1_000_000}, TEST_SECRET
    )
    assert await _closed_with(f"{server_a.ws}?token={expired}") == 4401


async def test_bearer_header_authenticates(server_a: ServerProcess) -> None:
    alice = await make_user(server_a, "alice")
    async with connect(
        server_a.ws, additional_headers={"Authorization": f"Bearer {alice.token}"}
    ) as ws:
        assert '"type":"ready"' in await asyncio.wait_for(ws.recv(), 10)
        await ws.send('{"type":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"type":"pong"}'


async def test_message_posted_on_one_process_reaches_members_on_another(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_b, "bob")
    chat_id = await alice.group(bob)
    bob_ws = await open_socket(server_b, bob)
    alice_ws = await open_socket(server_a, alice)

    sent = await alice.send(chat_id, "hello bob")

    for sock in (bob_ws, alice_ws):
        event = await sock.next_of("message.created")
        assert event["data"] == sent
        assert isinstance(event["id"], str)
        assert event["ts"].endswith("+00:00")


async def test_every_device_of_a_user_gets_the_event(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    devices = [
        await open_socket(server_a, bob),
        await open_socket(server_b, bob),
        await open_socket(server_b, bob),
    ]
    sent = await alice.send(chat_id, "to all of bob's devices")
    ids = set()
    for device in devices:
        event = await device.next_of("message.created")
        assert event["data"]["id"] == sent["id"]
        ids.add(event["id"])
    assert len(ids) == 1, "one event, one id, on every device"


async def test_non_members_and_removed_members_receive_nothing(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    carol = await make_user(server_a, "carol")
    chat_id = await alice.group(bob)
    carol_ws = await open_socket(server_b, carol)
    bob_ws = await open_socket(server_b, bob)

    await alice.send(chat_id, "secret")
    assert (await bob_ws.next_of("message.created"))["data"]["text"] == "secret"

    resp = await alice.client.delete(f"/api/v1/chats/{chat_id}/members/{bob.id}")
    assert resp.status_code == 204
    removed = await bob_ws.next_of("member.removed")
    assert removed["data"] == {"chatId": chat_id, "userId": bob.id}
    await alice.send(chat_id, "after bob left")

    # A marker chat created last: each socket's next event must be about it, proving that
    # nothing about the first chat arrived in between.
    marker = await carol.group(bob, title="marker")
    bob_next = await bob_ws.next_of("message.created", "message.updated", "chat.created")
    assert bob_next["type"] == "chat.created"
    assert bob_next["data"]["id"] == marker
    carol_next = await carol_ws.next_of("message.created", "chat.created", "member.added")
    assert carol_next["type"] == "chat.created"
    assert carol_next["data"]["id"] == marker


async def test_chat_and_member_events(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    carol = await make_user(server_a, "carol")
    alice_ws = await open_socket(server_a, alice)
    bob_ws = await open_socket(server_b, bob)
    carol_ws = await open_socket(server_b, carol)

    chat_id = await alice.group(bob)
    assert (await bob_ws.next_of("chat.created"))["data"]["id"] == chat_id
    assert (await alice_ws.next_of("chat.created"))["data"]["id"] == chat_id

    r = await alice.client.patch(f"/api/v1/chats/{chat_id}", json={"title": "renamed"})
    assert r.status_code == 200
    assert (await bob_ws.next_of("chat.updated"))["data"]["title"] == "renamed"

    r = await bob.post(f"/chats/{chat_id}/members", json={"userId": carol.id})
    assert r.status_code == 201
    added = await alice_ws.next_of("member.added")
    assert added["data"]["chatId"] == chat_id
    assert added["data"]["userId"] == carol.id
    logged = ("chat.created", "chat.updated", "member.added", "message.created")
    welcome = await carol_ws.next_of(*logged)  # skipping presence, which is not logged
    assert welcome["type"] == "chat.created"
    assert {m["userId"] for m in welcome["data"]["members"]} == {alice.id, bob.id, carol.id}
    # A member now, Carol gets the chat's events: this one first.
    joined = await carol_ws.next_of(*logged)
    assert (joined["type"], joined["data"]) == ("member.added", added["data"])

    sent = await alice.send(chat_id, "v1")
    r = await alice.client.patch(f"/api/v1/messages/{sent['id']}", json={"text": "v2"})
    assert r.status_code == 200
    updated = await carol_ws.next_of("message.updated")
    assert updated["data"]["text"] == "v2"
    assert updated["data"]["editedAt"] is not None

    r = await bob.post(f"/chats/{chat_id}/read", json={"messageId": sent["id"]})
    assert r.status_code == 204
    read = await alice_ws.next_of("read")
    assert read["data"] == {"chatId": chat_id, "userId": bob.id, "messageId": sent["id"]}

    r = await alice.client.delete(f"/api/v1/messages/{sent['id']}")
    assert r.status_code == 204
    deleted = await carol_ws.next_of("message.deleted")
    assert deleted["data"] == {"id": sent["id"], "chatId": chat_id}


async def test_event_ids_increase_per_user(server_a: ServerProcess, open_socket: Any) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    bob_ws = await open_socket(server_a, bob)
    for i in range(10):
        await alice.send(chat_id, f"m{i}")
    ids = [(await bob_ws.next_of("message.created"))["id"] for _ in range(10)]
    keys = [tuple(int(p) for p in i.split("-")) for i in ids]
    assert keys == sorted(keys)
    assert len(set(keys)) == 10
