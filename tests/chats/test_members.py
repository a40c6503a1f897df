"""Adding and removing members: who may, and what happens to ownership."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.chats.conftest import CHATS, create_direct, create_group, get_chat, my_chats, roles
from tests.fixtures.users import Account


async def add(
    client: httpx.AsyncClient, who: Account, chat_id: int, user_id: Any
) -> httpx.Response:
    return await client.post(
        f"{CHATS}/{chat_id}/members", json={"userId": user_id}, headers=who.headers
    )


async def remove(
    client: httpx.AsyncClient, who: Account, chat_id: int, user_id: int
) -> httpx.Response:
    return await client.delete(f"{CHATS}/{chat_id}/members/{user_id}", headers=who.headers)


async def test_owner_adds_a_member(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob)
    resp = await add(client, alice, chat["id"], carol.id)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["id"] == chat["id"]
    assert roles(body) == {alice.id: "owner", bob.id: "member", carol.id: "member"}
    assert (await get_chat(client, carol, chat["id"]))["id"] == chat["id"]
    assert [c["id"] for c in (await my_chats(client, carol))["items"]] == [chat["id"]]


async def test_any_member_may_add(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob)
    resp = await add(client, bob, chat["id"], carol.id)
    assert resp.status_code == 201
    assert roles(resp.json())[carol.id] == "member"


async def test_adding_to_a_direct_chat_is_400(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    resp = await add(client, alice, chat["id"], carol.id)
    assert resp.status_code == 400
    assert set(roles(await get_chat(client, alice, chat["id"]))) == {alice.id, bob.id}


async def test_adding_a_member_again_is_409(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    assert (await add(client, alice, chat["id"], bob.id)).status_code == 409
    assert (await add(client, bob, chat["id"], alice.id)).status_code == 409
    assert roles(await get_chat(client, alice, chat["id"])) == {alice.id: "owner", bob.id: "member"}


async def test_adding_an_unknown_user_is_422(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice)
    assert (await add(client, alice, chat["id"], bob.id + 1000)).status_code == 422


@pytest.mark.parametrize("user_id", [0, -5, "abc", None, 1.5, 2**53, [1], {"id": 1}], ids=repr)
async def test_bad_user_ids_are_422(
    client: httpx.AsyncClient, alice: Account, user_id: Any
) -> None:
    chat = await create_group(client, alice)
    assert (await add(client, alice, chat["id"], user_id)).status_code == 422


async def test_add_body_must_be_exactly_user_id(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice)
    url = f"{CHATS}/{chat['id']}/members"
    for body in ({}, {"user_id": bob.id}, {"userId": bob.id, "role": "owner"}):
        resp = await client.post(url, json=body, headers=alice.headers)
        assert resp.status_code == 422, body
    assert set(roles(await get_chat(client, alice, chat["id"]))) == {alice.id}


async def test_a_member_may_leave(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    resp = await remove(client, bob, chat["id"], bob.id)
    assert resp.status_code == 204
    assert resp.content == b""
    assert set(roles(await get_chat(client, alice, chat["id"]))) == {alice.id, carol.id}
    assert (await client.get(f"{CHATS}/{chat['id']}", headers=bob.headers)).status_code == 404
    assert (await my_chats(client, bob))["items"] == []


async def test_the_owner_may_remove_others(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    assert (await remove(client, alice, chat["id"], bob.id)).status_code == 204
    assert roles(await get_chat(client, alice, chat["id"])) == {
        alice.id: "owner",
        carol.id: "member",
    }
    assert (await client.get(f"{CHATS}/{chat['id']}", headers=bob.headers)).status_code == 404


async def test_a_member_may_not_remove_others(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob, carol)
    assert (await remove(client, bob, chat["id"], carol.id)).status_code == 403
    assert (await remove(client, bob, chat["id"], alice.id)).status_code == 403
    assert set(roles(await get_chat(client, alice, chat["id"]))) == {alice.id, bob.id, carol.id}


async def test_removing_someone_who_is_not_a_member_is_404(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, bob)
    assert (await remove(client, alice, chat["id"], carol.id)).status_code == 404
    assert (await remove(client, alice, chat["id"], carol.id + 1000)).status_code == 404


async def test_removed_member_can_be_added_back(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_group(client, alice, bob)
    await remove(client, bob, chat["id"], bob.id)
    assert (await add(client, alice, chat["id"], bob.id)).status_code == 201
    assert (await get_chat(client, bob, chat["id"]))["id"] == chat["id"]


async def test_members_of_a_direct_chat_cannot_change(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    assert (await remove(client, bob, chat["id"], bob.id)).status_code == 400
    assert (await remove(client, alice, chat["id"], bob.id)).status_code == 400
    assert set(roles(await get_chat(client, bob, chat["id"]))) == {alice.id, bob.id}


async def test_owner_leaving_hands_ownership_to_the_longest_standing_member(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account, dave: Account
) -> None:
    # carol joins before bob although bob's id is smaller: seniority, not id, decides.
    assert bob.id < carol.id
    chat = await create_group(client, alice)
    assert (await add(client, alice, chat["id"], carol.id)).status_code == 201
    assert (await add(client, alice, chat["id"], bob.id)).status_code == 201
    assert (await add(client, alice, chat["id"], dave.id)).status_code == 201
    assert (await remove(client, alice, chat["id"], alice.id)).status_code == 204
    after = await get_chat(client, bob, chat["id"])
    assert roles(after) == {carol.id: "owner", bob.id: "member", dave.id: "member"}
    # The new owner has the owner's powers; the old one is gone.
    assert (await remove(client, carol, chat["id"], dave.id)).status_code == 204
    resp = await client.patch(
        f"{CHATS}/{chat['id']}", json={"title": "carol's"}, headers=carol.headers
    )
    assert resp.status_code == 200
    assert (await client.get(f"{CHATS}/{chat['id']}", headers=alice.headers)).status_code == 404


async def test_owner_leaving_a_group_always_leaves_exactly_one_owner(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_group(client, alice, carol, bob)  # founders joined together
    await remove(client, alice, chat["id"], alice.id)
    after = roles(await get_chat(client, carol, chat["id"]))
    assert set(after) == {bob.id, carol.id}
    assert sorted(after.values()) == ["member", "owner"]


async def test_the_last_member_may_leave(client: httpx.AsyncClient, alice: Account) -> None:
    chat = await create_group(client, alice)
    assert (await remove(client, alice, chat["id"], alice.id)).status_code == 204
    assert (await client.get(f"{CHATS}/{chat['id']}", headers=alice.headers)).status_code == 404
