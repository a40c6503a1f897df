"""Creating, listing, reading and editing chats."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.chats.conftest import (
    CHATS,
    create_direct,
    create_group,
    get_chat,
    my_chats,
    roles,
    send,
)
from tests.fixtures.users import Account

CHAT_KEYS = {"id", "type", "title", "description", "creatorId", "createdAt", "updatedAt", "members"}
MEMBER_KEYS = {"userId", "username", "displayName", "role", "joinedAt", "lastReadMessageId"}


def aware(timestamp: str) -> datetime:
    parsed = datetime.fromisoformat(timestamp)
    assert parsed.utcoffset() is not None, timestamp
    return parsed


# --- POST /chats: direct --------------------------------------------------------------------


async def test_create_direct_chat(client: httpx.AsyncClient, alice: Account, bob: Account) -> None:
    resp = await client.post(
        CHATS, json={"type": "direct", "memberIds": [bob.id]}, headers=alice.headers
    )
    assert resp.status_code == 201, resp.text
    chat = resp.json()
    assert set(chat) == CHAT_KEYS
    assert chat["type"] == "direct"
    assert chat["creatorId"] == alice.id
    assert roles(chat) == {alice.id: "owner", bob.id: "member"}
    for member in chat["members"]:
        assert set(member) == MEMBER_KEYS
        assert member["lastReadMessageId"] is None
        aware(member["joinedAt"])
    assert {m["username"] for m in chat["members"]} == {"alice", "bob"}
    aware(chat["createdAt"])
    aware(chat["updatedAt"])


async def test_asking_again_for_a_direct_chat_answers_200_with_it_from_either_side(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    first = await client.post(
        CHATS, json={"type": "direct", "memberIds": [bob.id]}, headers=alice.headers
    )
    same_side = await client.post(
        CHATS, json={"type": "direct", "memberIds": [bob.id]}, headers=alice.headers
    )
    other_side = await client.post(
        CHATS, json={"type": "direct", "memberIds": [alice.id]}, headers=bob.headers
    )
    assert first.status_code == 201
    assert same_side.status_code == 200
    assert other_side.status_code == 200
    assert first.json()["id"] == same_side.json()["id"] == other_side.json()["id"]
    assert roles(other_side.json()) == {alice.id: "owner", bob.id: "member"}
    assert len((await my_chats(client, alice))["items"]) == 1
    assert len((await my_chats(client, bob))["items"]) == 1


async def test_each_pair_has_its_own_direct_chat(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    ab = await create_direct(client, alice, bob)
    ac = await create_direct(client, alice, carol)
    bc = await create_direct(client, bob, carol)
    assert len({ab["id"], ac["id"], bc["id"]}) == 3


async def test_a_group_with_the_same_two_people_is_not_their_direct_chat(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    group = await create_group(client, alice, bob)
    direct = await client.post(
        CHATS, json={"type": "direct", "memberIds": [bob.id]}, headers=alice.headers
    )
    assert direct.status_code == 201
    assert direct.json()["id"] != group["id"]


@pytest.mark.parametrize("others", ["none", "self", "two"])
async def test_direct_chat_needs_exactly_one_other_member(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account, others: str
) -> None:
    member_ids = {
        "none": [],
        "self": [alice.id],
        "two": [bob.id, carol.id],
    }[others]
    resp = await client.post(
        CHATS, json={"type": "direct", "memberIds": member_ids}, headers=alice.headers
    )
    assert resp.status_code == 422, resp.text
    assert (await my_chats(client, alice))["items"] == []


async def test_direct_without_member_ids_is_422(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.post(CHATS, json={"type": "direct"}, headers=alice.headers)
    assert resp.status_code == 422


@pytest.mark.parametrize("chat_type", ["direct", "group"])
async def test_unknown_member_is_422(
    client: httpx.AsyncClient, alice: Account, bob: Account, chat_type: str
) -> None:
    member_ids = [bob.id + 1000] if chat_type == "direct" else [bob.id, bob.id + 1000]
    resp = await client.post(
        CHATS, json={"type": chat_type, "memberIds": member_ids}, headers=alice.headers
    )
    assert resp.status_code == 422, resp.text
    assert (await my_chats(client, alice))["items"] == []
    assert (await my_chats(client, bob))["items"] == []


# --- POST /chats: group ---------------------------------------------------------------------


async def test_create_group_with_title_and_description(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    resp = await client.post(
        CHATS,
        json={
            "type": "group",
            "title": "Book club",
            "description": "Monthly",
            "memberIds": [bob.id, carol.id],
        },
        headers=alice.headers,
    )
    assert resp.status_code == 201, resp.text
    chat = resp.json()
    assert (chat["type"], chat["title"], chat["description"]) == ("group", "Book club", "Monthly")
    assert roles(chat) == {alice.id: "owner", bob.id: "member", carol.id: "member"}
    for who in (bob, carol):
        assert (await get_chat(client, who, chat["id"]))["title"] == "Book club"


async def test_group_of_one_and_repeated_or_self_ids(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    alone = await client.post(CHATS, json={"type": "group"}, headers=alice.headers)
    assert alone.status_code == 201
    assert roles(alone.json()) == {alice.id: "owner"}
    assert alone.json()["title"] is None
    repeated = await client.post(
        CHATS,
        json={"type": "group", "memberIds": [bob.id, bob.id, alice.id]},
        headers=alice.headers,
    )
    assert repeated.status_code == 201
    assert roles(repeated.json()) == {alice.id: "owner", bob.id: "member"}


async def test_two_groups_with_the_same_members_are_two_chats(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    first = await create_group(client, alice, bob)
    second = await create_group(client, alice, bob)
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": "channel", "memberIds": []},
        {"type": None},
        {"type": 1},
        {"type": "GROUP"},
        {"type": "group", "title": 5},
        {"type": "group", "title": "x" * 201},
        {"type": "group", "description": "x" * 2001},
        {"type": "group", "memberIds": "1"},
        {"type": "group", "memberIds": [0]},
        {"type": "group", "memberIds": [-1]},
        {"type": "group", "memberIds": [1.5]},
        {"type": "group", "memberIds": ["x"]},
        {"type": "group", "memberIds": [None]},
        {"type": "group", "memberIds": [2**53]},
        {"type": "group", "memberIds": list(range(1, 1002))},
        {"type": "group", "member_ids": [1]},
        {"type": "group", "owner": 1},
    ],
    ids=lambda b: repr(b)[:60],
)
async def test_bad_create_bodies_are_422(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any]
) -> None:
    resp = await client.post(CHATS, json=body, headers=alice.headers)
    assert resp.status_code == 422, resp.text
    assert (await my_chats(client, alice))["items"] == []


# --- GET /chats -----------------------------------------------------------------------------


async def test_list_is_latest_activity_first_with_last_message_and_unread(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    first = await create_group(client, alice, bob, title="first")
    second = await create_direct(client, alice, carol)
    third = await create_group(client, alice, bob, carol, title="third")
    listing = await my_chats(client, alice)
    assert [c["id"] for c in listing["items"]] == [third["id"], second["id"], first["id"]]
    assert listing["nextCursor"] is None
    assert all(c["lastMessage"] is None and c["unreadCount"] == 0 for c in listing["items"])

    sent = await send(client, bob, first["id"], "wake up")
    listing = await my_chats(client, alice)
    assert [c["id"] for c in listing["items"]] == [first["id"], third["id"], second["id"]]
    top = listing["items"][0]
    assert top["lastMessage"] == sent
    assert top["unreadCount"] == 1
    assert set(top) == CHAT_KEYS | {"lastMessage", "unreadCount"}

    await send(client, alice, second["id"], "hello carol")
    ids = [c["id"] for c in (await my_chats(client, alice))["items"]]
    assert ids == [second["id"], first["id"], third["id"]]
    # Each member sees only their own chats.
    assert [c["id"] for c in (await my_chats(client, carol))["items"]] == [
        second["id"],
        third["id"],
    ]


async def test_list_pages_through_every_chat_once(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    created = [(await create_group(client, alice, bob, title=f"g{i}"))["id"] for i in range(7)]
    await send(client, bob, created[2], "bump")
    expected = [created[2], *[c for c in reversed(created) if c != created[2]]]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = await my_chats(client, alice, **params)
        assert len(page["items"]) <= 3
        seen += [c["id"] for c in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_a_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for i in range(2):
        await create_group(client, alice, title=str(i))
    page = await my_chats(client, alice, limit=2)
    assert len(page["items"]) == 2
    assert page["nextCursor"] is None


@pytest.mark.parametrize("limit", [0, -1, 101, "many", 1.5])
async def test_list_limit_out_of_range_is_422(
    client: httpx.AsyncClient, alice: Account, limit: Any
) -> None:
    resp = await client.get(CHATS, params={"limit": limit}, headers=alice.headers)
    assert resp.status_code == 422


# --- GET /chats/{id} ------------------------------------------------------------------------


async def test_get_chat_with_members(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    created = await create_group(client, alice, bob, title="t")
    chat = await get_chat(client, bob, created["id"])
    assert chat == created
    assert [m["userId"] for m in chat["members"]] == [alice.id, bob.id]


# --- PATCH /chats/{id} ----------------------------------------------------------------------


async def patch(
    client: httpx.AsyncClient, who: Account, chat_id: int, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{CHATS}/{chat_id}", json=body, headers=who.headers)


async def test_owner_edits_title_and_description(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob, title="old")
    resp = await patch(client, alice, chat["id"], {"title": "new", "description": "about"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["title"], body["description"]) == ("new", "about")
    assert aware(body["updatedAt"]) >= aware(chat["updatedAt"])
    assert body["createdAt"] == chat["createdAt"]
    seen_by_bob = await get_chat(client, bob, chat["id"])
    assert (seen_by_bob["title"], seen_by_bob["description"]) == ("new", "about")


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await create_group(client, alice, title="keep")
    await patch(client, alice, chat["id"], {"description": "first"})
    after = await get_chat(client, alice, chat["id"])
    assert (after["title"], after["description"]) == ("keep", "first")
    await patch(client, alice, chat["id"], {"title": "renamed"})
    after = await get_chat(client, alice, chat["id"])
    assert (after["title"], after["description"]) == ("renamed", "first")
    await patch(client, alice, chat["id"], {})
    after = await get_chat(client, alice, chat["id"])
    assert (after["title"], after["description"]) == ("renamed", "first")
    await patch(client, alice, chat["id"], {"description": None})
    after = await get_chat(client, alice, chat["id"])
    assert (after["title"], after["description"]) == ("renamed", None)


async def test_patch_by_a_member_is_403(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob, title="mine")
    resp = await patch(client, bob, chat["id"], {"title": "ours"})
    assert resp.status_code == 403
    assert (await get_chat(client, alice, chat["id"]))["title"] == "mine"


@pytest.mark.parametrize(
    "body",
    [
        {"title": 1},
        {"title": "x" * 201},
        {"description": "x" * 2001},
        {"description": []},
        {"type": "direct"},
        {"creatorId": 1},
        {"members": []},
    ],
    ids=repr,
)
async def test_bad_patch_bodies_are_422(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any]
) -> None:
    chat = await create_group(client, alice, title="same")
    resp = await patch(client, alice, chat["id"], body)
    assert resp.status_code == 422, resp.text
    assert await get_chat(client, alice, chat["id"]) == chat


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        b64(b"[]"),
        b64(b"[1]"),
        b64(b'["2024-01-01T00:00:00+00:00"]'),
        b64(b'["2024-01-01T00:00:00+00:00", "1"]'),
        b64(b'["2024-01-01T00:00:00+00:00", 1.5]'),
        b64(b'[1, "2024-01-01T00:00:00+00:00"]'),
        b64(b'["not a time", 1]'),
        b64(b'["2024-13-45T99:00:00+00:00", 1]'),
        b64(b'["0001-01-01T00:00:00+14:00", 1]'),
        b64(b'["9999-12-31T23:59:59-14:00", 1]'),
        b64(b'["2024-01-01T00:00:00+00:00", 99999999999999999999999]'),
        b64(b'["2024-01-01T00:00:00\\u0000", 1]'),
        b64(b'{"at": "2024-01-01T00:00:00+00:00", "id": 1}'),
    ],
    ids=lambda c: c[:40],
)
async def test_garbage_list_cursors_are_422(
    client: httpx.AsyncClient, alice: Account, cursor: str
) -> None:
    await create_group(client, alice)
    resp = await client.get(CHATS, params={"cursor": cursor}, headers=alice.headers)
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize(
    "at", ["2000-01-01T00:00:00+00:00", "2000-01-01T00:00:00", "2999-01-01T05:00:00-03:00"]
)
async def test_list_cursors_of_the_right_shape_just_page(
    client: httpx.AsyncClient, alice: Account, at: str
) -> None:
    chat = await create_group(client, alice)
    cursor = b64(json.dumps([at, 2**63 - 1]).encode())
    resp = await client.get(CHATS, params={"cursor": cursor}, headers=alice.headers)
    assert resp.status_code == 200, resp.text
    expected = [] if at.startswith("2000") else [chat["id"]]
    assert [c["id"] for c in resp.json()["items"]] == expected
