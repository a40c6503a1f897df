"""An end-to-end walk through the main flow."""

from __future__ import annotations

import httpx

from tests.fixtures.users import Account


async def test_two_users_chat_and_unread_counts_move(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    resp = await client.post(
        "/api/v1/chats", json={"type": "direct", "memberIds": [bob.id]}, headers=alice.headers
    )
    assert resp.status_code == 201, resp.text
    chat = resp.json()
    again = await client.post(
        "/api/v1/chats", json={"type": "direct", "memberIds": [alice.id]}, headers=bob.headers
    )
    assert again.status_code == 200
    assert again.json()["id"] == chat["id"]

    ids = []
    for i in range(5):
        r = await client.post(
            f"/api/v1/chats/{chat['id']}/messages", json={"text": f"hi {i}"}, headers=alice.headers
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    listing = (await client.get("/api/v1/chats", headers=bob.headers)).json()
    assert listing["items"][0]["unreadCount"] == 5
    assert listing["items"][0]["lastMessage"]["text"] == "hi 4"

    r = await client.post(
        f"/api/v1/chats/{chat['id']}/read", json={"messageId": ids[2]}, headers=bob.headers
    )
    assert r.status_code == 204
    listing = (await client.get("/api/v1/chats", headers=bob.headers)).json()
    assert listing["items"][0]["unreadCount"] == 2

    page1 = (
        await client.get(f"/api/v1/chats/{chat['id']}/messages?limit=2", headers=bob.headers)
    ).json()
    assert [m["text"] for m in page1["items"]] == ["hi 4", "hi 3"]
    page2 = (
        await client.get(
            f"/api/v1/chats/{chat['id']}/messages",
            params={"limit": 2, "cursor": page1["nextCursor"]},
            headers=bob.headers,
        )
    ).json()
    assert [m["text"] for m in page2["items"]] == ["hi 2", "hi 1"]
