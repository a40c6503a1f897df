"""Read markers and the unread counts that follow them."""

from __future__ import annotations

import httpx
import pytest

from tests.chats.conftest import CHATS, create_direct, create_group, get_chat, my_chats, send
from tests.fixtures.users import Account


async def read(
    client: httpx.AsyncClient, who: Account, chat_id: int, message_id: object
) -> httpx.Response:
    return await client.post(
        f"{CHATS}/{chat_id}/read", json={"messageId": message_id}, headers=who.headers
    )


async def unread(client: httpx.AsyncClient, who: Account, chat_id: int) -> int:
    items = (await my_chats(client, who))["items"]
    return int(next(c for c in items if c["id"] == chat_id)["unreadCount"])


async def marker(client: httpx.AsyncClient, who: Account, chat_id: int) -> int | None:
    chat = await get_chat(client, who, chat_id)
    value = next(m for m in chat["members"] if m["userId"] == who.id)["lastReadMessageId"]
    return None if value is None else int(value)


async def test_unread_count_follows_the_read_marker(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    ids = [(await send(client, alice, chat["id"], str(i)))["id"] for i in range(4)]
    assert await unread(client, bob, chat["id"]) == 4
    assert await unread(client, alice, chat["id"]) == 0  # one's own messages are read
    resp = await read(client, bob, chat["id"], ids[1])
    assert resp.status_code == 204
    assert resp.content == b""
    assert await unread(client, bob, chat["id"]) == 2
    assert await marker(client, bob, chat["id"]) == ids[1]
    assert await marker(client, alice, chat["id"]) is None
    await read(client, bob, chat["id"], ids[3])
    assert await unread(client, bob, chat["id"]) == 0
    await send(client, alice, chat["id"], "more")
    assert await unread(client, bob, chat["id"]) == 1


async def test_the_marker_never_moves_backwards(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    ids = [(await send(client, alice, chat["id"], str(i)))["id"] for i in range(3)]
    await read(client, bob, chat["id"], ids[2])
    resp = await read(client, bob, chat["id"], ids[0])
    assert resp.status_code == 204
    assert await marker(client, bob, chat["id"]) == ids[2]
    assert await unread(client, bob, chat["id"]) == 0


async def test_markers_are_per_member(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    ids = [(await send(client, alice, chat["id"], str(i)))["id"] for i in range(3)]
    await read(client, bob, chat["id"], ids[2])
    assert await unread(client, bob, chat["id"]) == 0
    assert await unread(client, carol, chat["id"]) == 3


async def test_deleted_messages_are_not_unread(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    ids = [(await send(client, alice, chat["id"], str(i)))["id"] for i in range(3)]
    await client.delete(f"/api/v1/messages/{ids[1]}", headers=alice.headers)
    assert await unread(client, bob, chat["id"]) == 2


async def test_a_message_from_another_chat_is_422(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    mine = await create_direct(client, alice, bob)
    other = await create_group(client, alice, bob)
    elsewhere = await send(client, alice, other["id"], "elsewhere")
    await send(client, alice, mine["id"], "here")
    resp = await read(client, bob, mine["id"], elsewhere["id"])
    assert resp.status_code == 422
    assert await marker(client, bob, mine["id"]) is None
    assert await unread(client, bob, mine["id"]) == 1


async def test_an_unknown_message_is_422(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    message = await send(client, alice, chat["id"], "x")
    assert (await read(client, bob, chat["id"], message["id"] + 1000)).status_code == 422
    assert await marker(client, bob, chat["id"]) is None


@pytest.mark.parametrize("message_id", [0, -1, "one", None, 1.5, 2**53, [1]], ids=repr)
async def test_bad_message_ids_are_422(
    client: httpx.AsyncClient, alice: Account, bob: Account, message_id: object
) -> None:
    chat = await create_direct(client, alice, bob)
    await send(client, alice, chat["id"], "x")
    assert (await read(client, bob, chat["id"], message_id)).status_code == 422


async def test_read_body_must_be_exactly_message_id(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    message = await send(client, alice, chat["id"], "x")
    for body in ({}, {"message_id": message["id"]}, {"messageId": message["id"], "x": 1}):
        resp = await client.post(f"{CHATS}/{chat['id']}/read", json=body, headers=bob.headers)
        assert resp.status_code == 422, body
