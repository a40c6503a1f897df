"""Concurrent requests that must agree: one message per clientId, one direct chat per pair,
one membership per person, read markers that only move forward."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx

from tests.chats.conftest import CHATS, create_group, list_messages, send
from tests.fixtures.users import Account
from tests.jobs.conftest import listening

N = 8


async def test_concurrent_retries_with_one_client_id_make_one_message(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    answers = await asyncio.gather(
        *(
            client.post(
                f"{CHATS}/{chat['id']}/messages",
                json={"text": "only once", "clientId": "retry-storm"},
                headers=alice.headers,
            )
            for _ in range(N)
        )
    )
    assert Counter(r.status_code for r in answers) == {201: 1, 200: N - 1}
    assert len({r.json()["id"] for r in answers}) == 1
    assert len((await list_messages(client, bob, chat["id"]))["items"]) == 1


async def test_both_sides_asking_for_their_direct_chat_at_once_get_one(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    calls = [
        client.post(CHATS, json={"type": "direct", "memberIds": [other.id]}, headers=me.headers)
        for me, other in [(alice, bob), (bob, alice)] * (N // 2)
    ]
    answers = await asyncio.gather(*calls)
    assert Counter(r.status_code for r in answers) == {201: 1, 200: N - 1}
    assert len({r.json()["id"] for r in answers}) == 1
    listing = await client.get(CHATS, headers=alice.headers)
    assert len(listing.json()["items"]) == 1


async def test_adding_one_person_concurrently_adds_them_once(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob)
    answers = await asyncio.gather(
        *(
            client.post(
                f"{CHATS}/{chat['id']}/members", json={"userId": carol.id}, headers=who.headers
            )
            for who in [alice, bob] * (N // 2)
        )
    )
    assert Counter(r.status_code for r in answers) == {201: 1, 409: N - 1}
    members = (await client.get(f"{CHATS}/{chat['id']}", headers=carol.headers)).json()
    assert [m["userId"] for m in members["members"]].count(carol.id) == 1


async def test_concurrent_read_markers_end_at_the_highest_acknowledged(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    ids = [
        (
            await client.post(
                f"{CHATS}/{chat['id']}/messages", json={"text": f"m{i}"}, headers=alice.headers
            )
        ).json()["id"]
        for i in range(50)
    ]
    shuffled = random.Random(7).sample(ids, len(ids))
    answers = await asyncio.gather(
        *(
            client.post(f"{CHATS}/{chat['id']}/read", json={"messageId": mid}, headers=bob.headers)
            for mid in shuffled
        )
    )
    assert {r.status_code for r in answers} == {204}
    members = (await client.get(f"{CHATS}/{chat['id']}", headers=bob.headers)).json()["members"]
    marker = next(m for m in members if m["userId"] == bob.id)["lastReadMessageId"]
    assert marker == max(ids)


async def test_removing_one_member_concurrently_removes_them_once(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    answers = await asyncio.gather(
        *(
            client.delete(f"{CHATS}/{chat['id']}/members/{carol.id}", headers=alice.headers)
            for _ in range(N)
        )
    )
    assert Counter(r.status_code for r in answers) == {204: 1, 404: N - 1}


async def test_an_owner_leaving_twice_at_once_hands_ownership_on_once(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    answers = await asyncio.gather(
        *(
            client.delete(f"{CHATS}/{chat['id']}/members/{alice.id}", headers=alice.headers)
            for _ in range(N)
        )
    )
    assert Counter(r.status_code for r in answers) == {204: 1, 404: N - 1}
    members = (await client.get(f"{CHATS}/{chat['id']}", headers=bob.headers)).json()["members"]
    assert sorted(m["role"] for m in members) == ["member", "owner"]


async def test_a_chat_list_read_while_messages_arrive_counts_up_to_its_last_message(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    """Each listing is one snapshot: its unread count never includes a message newer than
    the last message it shows (a page that is sent that message's event afterwards would
    count it twice). Not equal either: ids are taken before commits, so a message with a
    lower id may commit after the one shown."""
    chat = await create_group(client, alice, bob)
    sent: list[int] = []

    async def post(writer: int) -> None:
        for i in range(40):
            answer = await client.post(
                f"{CHATS}/{chat['id']}/messages",
                json={"text": f"w{writer} m{i}"},
                headers=bob.headers,
            )
            assert answer.status_code == 201, answer.text
            sent.append(answer.json()["id"])

    posting = asyncio.gather(*(post(w) for w in range(4)))
    listings: list[tuple[int | None, int]] = []
    while not posting.done():
        items = (await client.get(CHATS, headers=alice.headers)).json()["items"]
        summary = next(c for c in items if c["id"] == chat["id"])
        last = summary["lastMessage"]
        listings.append((last and last["id"], summary["unreadCount"]))
    await posting
    wrong = [
        (last_id, count)
        for last_id, count in listings
        if count > sum(1 for mid in sent if last_id is not None and mid <= last_id)
    ]
    assert len(listings) > 20
    assert wrong == []


async def test_an_edit_racing_a_delete_never_brings_the_text_back(
    app: Any, client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    """Edits and deletes of one message at once: one delete wins, and no edit is written or
    announced after it (the contract erases a deleted message's text)."""
    chat = await create_group(client, alice, bob)
    async with listening(app, bob.id) as events:
        for round_ in range(4):
            sent = await send(client, alice, chat["id"], f"round {round_}")
            url = f"/api/v1/messages/{sent['id']}"
            calls = [
                client.delete(url, headers=alice.headers)
                if i % 3 == 2
                else client.patch(url, json={"text": f"secret {i}"}, headers=alice.headers)
                for i in range(N)
            ]
            answers = await asyncio.gather(*calls)
            deletes = [r.status_code for r in answers if r.request.method == "DELETE"]
            edits = [r.status_code for r in answers if r.request.method == "PATCH"]
            assert Counter(deletes) == {204: 1, 404: len(deletes) - 1}, deletes
            assert set(edits) <= {200, 404}, [r.text for r in answers]

            marker = await send(client, alice, chat["id"], f"after round {round_}")
            await events.next("message.created", lambda d, m=marker: d["id"] == m["id"])
            about = [e["type"] for e in events.seen if e["data"].get("id") == sent["id"]]
            assert about.count("message.deleted") == 1, about
            assert about[-1] == "message.deleted", about
            assert about.count("message.updated") == edits.count(200), (about, edits)
            assert sent["id"] not in [
                m["id"] for m in (await list_messages(client, bob, chat["id"]))["items"]
            ]
