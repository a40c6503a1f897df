"""Only members see a chat, its members and its messages; to anyone else it does not exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.chats.conftest import create_direct, create_group, get_chat, list_messages, send
from tests.fixtures.users import Account


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None

    async def by(self, client: httpx.AsyncClient, who: Account | None) -> httpx.Response:
        headers = who.headers if who else {}
        return await client.request(self.method, self.path, json=self.body, headers=headers)


def chat_calls(chat_id: int, message_id: int, user_id: int, new_user_id: int) -> dict[str, Call]:
    """Every chat and message route, aimed at one chat and one of its messages."""
    return {
        "get chat": Call("GET", f"/api/v1/chats/{chat_id}"),
        "patch chat": Call("PATCH", f"/api/v1/chats/{chat_id}", {"title": "mine now"}),
        "add member": Call("POST", f"/api/v1/chats/{chat_id}/members", {"userId": new_user_id}),
        "remove member": Call("DELETE", f"/api/v1/chats/{chat_id}/members/{user_id}"),
        "list messages": Call("GET", f"/api/v1/chats/{chat_id}/messages"),
        "send message": Call("POST", f"/api/v1/chats/{chat_id}/messages", {"text": "hi"}),
        "mark read": Call("POST", f"/api/v1/chats/{chat_id}/read", {"messageId": message_id}),
        "edit message": Call("PATCH", f"/api/v1/messages/{message_id}", {"text": "edited"}),
        "delete message": Call("DELETE", f"/api/v1/messages/{message_id}"),
    }


ROUTES = list(chat_calls(1, 1, 1, 1))


@pytest.fixture
async def scene(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> dict[str, Any]:
    """A group of alice (owner) and bob with one message by bob; carol is an outsider."""
    chat = await create_group(client, alice, bob, title="private")
    message = await send(client, bob, chat["id"], "secret")
    return {"chat": chat, "message": message}


@pytest.mark.parametrize("route", ROUTES)
async def test_outsiders_get_404_and_change_nothing(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    carol: Account,
    scene: dict[str, Any],
    route: str,
) -> None:
    chat, message = scene["chat"], scene["message"]
    call = chat_calls(chat["id"], message["id"], bob.id, carol.id)[route]
    resp = await call.by(client, carol)
    assert resp.status_code == 404, resp.text
    assert "secret" not in resp.text
    assert "private" not in resp.text
    assert await get_chat(client, alice, chat["id"]) == chat
    assert (await list_messages(client, alice, chat["id"]))["items"] == [message]


@pytest.mark.parametrize("route", ROUTES)
async def test_an_outsider_cannot_tell_a_hidden_chat_from_a_missing_one(
    client: httpx.AsyncClient, bob: Account, carol: Account, scene: dict[str, Any], route: str
) -> None:
    chat, message = scene["chat"], scene["message"]
    hidden = await chat_calls(chat["id"], message["id"], bob.id, carol.id)[route].by(client, carol)
    missing_chat = chat["id"] + 1000
    missing_message = message["id"] + 1000
    missing = await chat_calls(missing_chat, missing_message, bob.id, carol.id)[route].by(
        client, carol
    )
    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("route", ROUTES)
async def test_members_get_404_for_missing_chats_and_messages(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account, route: str
) -> None:
    await create_group(client, alice, bob)
    call = chat_calls(987654, 987654, bob.id, carol.id)[route]
    assert (await call.by(client, alice)).status_code == 404


@pytest.mark.parametrize("route", ROUTES)
async def test_former_members_get_404(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    carol: Account,
    scene: dict[str, Any],
    route: str,
) -> None:
    chat, message = scene["chat"], scene["message"]
    left = await client.delete(f"/api/v1/chats/{chat['id']}/members/{bob.id}", headers=bob.headers)
    assert left.status_code == 204
    call = chat_calls(chat["id"], message["id"], alice.id, carol.id)[route]
    assert (await call.by(client, bob)).status_code == 404


@pytest.mark.parametrize("route", [*ROUTES, "create chat", "list chats"])
async def test_every_route_needs_authentication(
    client: httpx.AsyncClient, bob: Account, carol: Account, scene: dict[str, Any], route: str
) -> None:
    chat, message = scene["chat"], scene["message"]
    calls = chat_calls(chat["id"], message["id"], bob.id, carol.id)
    calls["create chat"] = Call("POST", "/api/v1/chats", {"type": "group"})
    calls["list chats"] = Call("GET", "/api/v1/chats")
    resp = await calls[route].by(client, None)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_direct_chats_are_private_too(
    client: httpx.AsyncClient, alice: Account, bob: Account, carol: Account
) -> None:
    chat = await create_direct(client, alice, bob)
    message = await send(client, alice, chat["id"], "just us")
    for name, call in chat_calls(chat["id"], message["id"], bob.id, carol.id).items():
        assert (await call.by(client, carol)).status_code == 404, name
