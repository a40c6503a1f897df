"""Messages: posting with idempotent retries, listing with cursors, editing and deleting."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.chats.conftest import (
    CHATS,
    create_direct,
    create_group,
    list_messages,
    my_chats,
    send,
    texts,
)
from tests.fixtures.users import Account

MESSAGE_KEYS = {"id", "chatId", "authorId", "text", "clientId", "createdAt", "editedAt", "previews"}


# Texts that show as nothing: zero-width space and joiner, a byte-order mark, a direction
# mark, the Hangul filler, the blank Braille pattern.
INVISIBLE_TEXTS = [
    {"text": "\u200b"},
    {"text": " \u200d\ufeff "},
    {"text": "\u200e\u3164"},
    {"text": "\u2800\u2800"},
    {"text": "\ufe0f\u034f"},
]


def url(chat_id: int) -> str:
    return f"{CHATS}/{chat_id}/messages"


async def post(client: httpx.AsyncClient, who: Account, chat_id: int, body: Any) -> httpx.Response:
    return await client.post(url(chat_id), json=body, headers=who.headers)


# --- POST /chats/{id}/messages --------------------------------------------------------------


async def test_send_answers_201_with_the_message(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    resp = await post(client, alice, chat["id"], {"text": "hello"})
    assert resp.status_code == 201, resp.text
    message = resp.json()
    assert set(message) == MESSAGE_KEYS
    assert message["chatId"] == chat["id"]
    assert message["authorId"] == alice.id
    assert message["text"] == "hello"
    assert message["clientId"] is None
    assert message["editedAt"] is None
    assert message["previews"] == []
    assert datetime.fromisoformat(message["createdAt"]).utcoffset() is not None
    assert (await list_messages(client, bob, chat["id"]))["items"] == [message]


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "x" * 4000,
        " padded ",
        "émoji 😀 and 中文",
        "line\nbreak",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # one emoji, joined by zero-width joiners
        "\u200bword",
        "\u0600",  # a format character that shows (an Arabic number sign)
    ],
)
async def test_texts_of_1_to_4000_chars_are_kept_verbatim(
    client: httpx.AsyncClient, alice: Account, text: str
) -> None:
    chat = await create_group(client, alice)
    assert (await send(client, alice, chat["id"], text))["text"] == text
    assert await texts(client, alice, chat["id"]) == [text]


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": " "},
        {"text": " \n\t "},
        *INVISIBLE_TEXTS,
        {"text": "x" * 4001},
        {"text": None},
        {"text": 5},
        {"text": ["hi"]},
        {},
        {"clientId": "c1"},
        {"text": "hi", "clientId": ""},
        {"text": "hi", "clientId": "c" * 65},
        {"text": "hi", "clientId": 7},
        {"text": "hi", "client_id": "c1"},
        {"text": "hi", "authorId": 1},
    ],
    ids=lambda b: repr(b)[:50],
)
async def test_bad_message_bodies_are_422(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any]
) -> None:
    chat = await create_group(client, alice)
    resp = await post(client, alice, chat["id"], body)
    assert resp.status_code == 422, resp.text
    assert await texts(client, alice, chat["id"]) == []


async def test_same_client_id_from_the_same_author_answers_200_with_the_first(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    first = await post(client, alice, chat["id"], {"text": "once", "clientId": "c-1"})
    assert first.status_code == 201
    retry = await post(client, alice, chat["id"], {"text": "once", "clientId": "c-1"})
    assert retry.status_code == 200
    assert retry.json() == first.json()
    # Even with different text the retry is the first message, never a second one.
    changed = await post(client, alice, chat["id"], {"text": "twice?", "clientId": "c-1"})
    assert changed.status_code == 200
    assert changed.json()["id"] == first.json()["id"]
    assert changed.json()["text"] == "once"
    assert await texts(client, bob, chat["id"]) == ["once"]


async def test_same_client_id_from_another_author_is_a_new_message(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    mine = await post(client, alice, chat["id"], {"text": "from alice", "clientId": "same"})
    theirs = await post(client, bob, chat["id"], {"text": "from bob", "clientId": "same"})
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["clientId"] == "same"
    assert await texts(client, alice, chat["id"]) == ["from bob", "from alice"]


async def test_same_client_id_in_another_chat_is_a_new_message(
    client: httpx.AsyncClient, alice: Account
) -> None:
    one = await create_group(client, alice, title="one")
    two = await create_group(client, alice, title="two")
    first = await post(client, alice, one["id"], {"text": "a", "clientId": "k"})
    second = await post(client, alice, two["id"], {"text": "a", "clientId": "k"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


async def test_messages_without_client_id_are_never_deduplicated(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await create_group(client, alice)
    for _ in range(3):
        await send(client, alice, chat["id"], "same text")
    assert await texts(client, alice, chat["id"]) == ["same text"] * 3


# --- GET /chats/{id}/messages ---------------------------------------------------------------


async def test_listing_is_newest_first_with_a_default_page_of_50(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await create_group(client, alice)
    for i in range(55):
        await send(client, alice, chat["id"], str(i))
    page = await list_messages(client, alice, chat["id"])
    assert [m["text"] for m in page["items"]] == [str(i) for i in range(54, 4, -1)]
    assert page["nextCursor"] is not None
    rest = await list_messages(client, alice, chat["id"], cursor=page["nextCursor"])
    assert [m["text"] for m in rest["items"]] == ["4", "3", "2", "1", "0"]
    assert rest["nextCursor"] is None


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_bounds_are_accepted(
    client: httpx.AsyncClient, alice: Account, limit: int
) -> None:
    chat = await create_group(client, alice)
    for i in range(3):
        await send(client, alice, chat["id"], str(i))
    page = await list_messages(client, alice, chat["id"], limit=limit)
    assert len(page["items"]) == min(limit, 3)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "1e2"])
async def test_limit_out_of_range_is_422(
    client: httpx.AsyncClient, alice: Account, limit: str
) -> None:
    chat = await create_group(client, alice)
    resp = await client.get(url(chat["id"]), params={"limit": limit}, headers=alice.headers)
    assert resp.status_code == 422, resp.text


async def test_empty_chat_lists_nothing(client: httpx.AsyncClient, alice: Account) -> None:
    chat = await create_group(client, alice)
    assert await list_messages(client, alice, chat["id"]) == {"items": [], "nextCursor": None}


async def test_pages_stay_stable_while_new_messages_arrive(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    original = [(await send(client, alice, chat["id"], f"old {i}"))["id"] for i in range(23)]
    seen: list[int] = []
    cursor = None
    round_ = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        page = await list_messages(client, bob, chat["id"], **params)
        seen += [m["id"] for m in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
        # Both people keep talking between page fetches.
        await send(client, bob, chat["id"], f"new {round_} from bob")
        await send(client, alice, chat["id"], f"new {round_} from alice")
        round_ += 1
    assert seen == list(reversed(original))  # no duplicates, no gaps, newest first
    assert round_ == 4


async def test_paging_skips_messages_deleted_in_between(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await create_group(client, alice)
    ids = [(await send(client, alice, chat["id"], str(i)))["id"] for i in range(6)]
    first = await list_messages(client, alice, chat["id"], limit=2)
    assert [m["id"] for m in first["items"]] == [ids[5], ids[4]]
    await client.delete(f"/api/v1/messages/{ids[3]}", headers=alice.headers)
    await client.delete(f"/api/v1/messages/{ids[5]}", headers=alice.headers)
    second = await list_messages(client, alice, chat["id"], limit=2, cursor=first["nextCursor"])
    assert [m["id"] for m in second["items"]] == [ids[2], ids[1]]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GARBAGE_CURSORS = [
    "garbage",
    "!!!!",
    "%%%",
    "....",
    "a",
    "x" * 256,
    "é",
    b64(b"not json"),
    b64(b"\xff\xfe\xfd"),
    b64(b"{}"),
    b64(b'{"before": 5}'),
    b64(b"[]"),
    b64(b"5"),
    b64(b'"5"'),
    b64(b"null"),
    b64(b"[1, 2]"),
    b64(b'["5"]'),
    b64(b"[1.5]"),
    b64(b"[true]"),
    b64(b"[null]"),
    b64(b"[[1]]"),
    b64(b"[1e400]"),
    b64(b"[NaN]"),
    b64(b"[99999999999999999999999]"),
    b64(b"[-99999999999999999999999]"),
    b64(b"[9223372036854775808]"),
    b64(b"[" * 100 + b"]" * 100),
]


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS, ids=lambda c: c[:40])
async def test_garbage_cursors_are_422(
    client: httpx.AsyncClient, alice: Account, cursor: str
) -> None:
    chat = await create_group(client, alice)
    await send(client, alice, chat["id"], "hi")
    resp = await client.get(url(chat["id"]), params={"cursor": cursor}, headers=alice.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]


async def test_over_long_cursor_is_422(client: httpx.AsyncClient, alice: Account) -> None:
    chat = await create_group(client, alice)
    resp = await client.get(url(chat["id"]), params={"cursor": "x" * 257}, headers=alice.headers)
    assert resp.status_code == 422


async def test_cursor_of_a_valid_shape_but_any_value_just_pages(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await create_group(client, alice)
    ids = [(await send(client, alice, chat["id"], str(i)))["id"] for i in range(3)]
    for before, expected in ((ids[2], ["1", "0"]), (0, []), (-7, []), (2**63 - 1, ["2", "1", "0"])):
        resp = await client.get(
            url(chat["id"]), params={"cursor": b64(f"[{before}]".encode())}, headers=alice.headers
        )
        assert resp.status_code == 200, resp.text
        assert [m["text"] for m in resp.json()["items"]] == expected


# --- PATCH /messages/{id} -------------------------------------------------------------------


async def test_author_edits_and_edited_at_is_set(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    message = await send(client, alice, chat["id"], "tpyo")
    resp = await client.patch(
        f"/api/v1/messages/{message['id']}", json={"text": "typo"}, headers=alice.headers
    )
    assert resp.status_code == 200, resp.text
    edited = resp.json()
    assert edited["text"] == "typo"
    assert edited["editedAt"] is not None
    assert datetime.fromisoformat(edited["editedAt"]) >= datetime.fromisoformat(
        message["createdAt"]
    )
    assert {k: v for k, v in edited.items() if k not in ("text", "editedAt")} == {
        k: v for k, v in message.items() if k not in ("text", "editedAt")
    }
    assert (await list_messages(client, bob, chat["id"]))["items"] == [edited]


async def test_only_the_author_may_edit(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)  # alice owns the chat
    message = await send(client, bob, chat["id"], "bob's words")
    resp = await client.patch(
        f"/api/v1/messages/{message['id']}", json={"text": "alice's words"}, headers=alice.headers
    )
    assert resp.status_code == 403
    assert await texts(client, alice, chat["id"]) == ["bob's words"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "   "},
        *INVISIBLE_TEXTS,
        {"text": "x" * 4001},
        {"text": 1},
        {"text": "a", "x": 1},
    ],
    ids=repr,
)
async def test_bad_edit_bodies_are_422(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any]
) -> None:
    chat = await create_group(client, alice)
    message = await send(client, alice, chat["id"], "original")
    resp = await client.patch(f"/api/v1/messages/{message['id']}", json=body, headers=alice.headers)
    assert resp.status_code == 422
    assert (await list_messages(client, alice, chat["id"]))["items"] == [message]


# --- DELETE /messages/{id} ------------------------------------------------------------------


async def test_author_deletes_and_the_message_is_gone(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    keep = await send(client, bob, chat["id"], "keep")
    gone = await send(client, bob, chat["id"], "gone")
    resp = await client.delete(f"/api/v1/messages/{gone['id']}", headers=bob.headers)
    assert resp.status_code == 204
    assert resp.content == b""
    for who in (alice, bob):
        assert (await list_messages(client, who, chat["id"]))["items"] == [keep]
    again = await client.delete(f"/api/v1/messages/{gone['id']}", headers=bob.headers)
    assert again.status_code == 404
    edit = await client.patch(
        f"/api/v1/messages/{gone['id']}", json={"text": "back?"}, headers=bob.headers
    )
    assert edit.status_code == 404


async def test_the_chat_owner_may_delete_anyones_message(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    message = await send(client, bob, chat["id"], "moderated")
    resp = await client.delete(f"/api/v1/messages/{message['id']}", headers=alice.headers)
    assert resp.status_code == 204
    assert await texts(client, bob, chat["id"]) == []


async def test_other_members_may_not_delete(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    by_alice = await send(client, alice, chat["id"], "owner's")
    by_bob = await send(client, bob, chat["id"], "bob's")
    for message in (by_alice, by_bob):
        resp = await client.delete(f"/api/v1/messages/{message['id']}", headers=carol.headers)
        assert resp.status_code == 403
    assert await texts(client, carol, chat["id"]) == ["bob's", "owner's"]


async def test_a_retry_after_delete_does_not_resurrect_or_duplicate(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await create_group(client, alice)
    first = await post(client, alice, chat["id"], {"text": "t", "clientId": "r"})
    await client.delete(f"/api/v1/messages/{first.json()['id']}", headers=alice.headers)
    retry = await post(client, alice, chat["id"], {"text": "t", "clientId": "r"})
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert await texts(client, alice, chat["id"]) == []


# --- lastMessage ----------------------------------------------------------------------------


async def test_last_message_ignores_deleted_messages(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    older = await send(client, alice, chat["id"], "older")
    newer = await send(client, alice, chat["id"], "newer")
    assert (await my_chats(client, bob))["items"][0]["lastMessage"]["id"] == newer["id"]
    await client.delete(f"/api/v1/messages/{newer['id']}", headers=alice.headers)
    summary = (await my_chats(client, bob))["items"][0]
    assert summary["lastMessage"] == older
    assert summary["unreadCount"] == 1
    await client.delete(f"/api/v1/messages/{older['id']}", headers=alice.headers)
    summary = (await my_chats(client, bob))["items"][0]
    assert summary["lastMessage"] is None
    assert summary["unreadCount"] == 0


async def test_last_message_follows_edits(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    message = await send(client, alice, chat["id"], "draft")
    await client.patch(
        f"/api/v1/messages/{message['id']}", json={"text": "final"}, headers=alice.headers
    )
    assert (await my_chats(client, bob))["items"][0]["lastMessage"]["text"] == "final"
