"""Chat test helpers over HTTP (the root `client` refuses 5xx answers)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.users import Account, register

CHATS = "/api/v1/chats"


@pytest.fixture
async def dave(client: httpx.AsyncClient) -> Account:
    return await register(client, "dave")


async def create_direct(client: httpx.AsyncClient, me: Account, other: Account) -> dict[str, Any]:
    resp = await client.post(
        CHATS, json={"type": "direct", "memberIds": [other.id]}, headers=me.headers
    )
    assert resp.status_code in (200, 201), resp.text
    return dict(resp.json())


async def create_group(
    client: httpx.AsyncClient, owner: Account, *members: Account, title: str = "group"
) -> dict[str, Any]:
    resp = await client.post(
        CHATS,
        json={"type": "group", "title": title, "memberIds": [m.id for m in members]},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def send(
    client: httpx.AsyncClient, who: Account, chat_id: int, text: str, **extra: Any
) -> dict[str, Any]:
    resp = await client.post(
        f"{CHATS}/{chat_id}/messages", json={"text": text, **extra}, headers=who.headers
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def list_messages(
    client: httpx.AsyncClient, who: Account, chat_id: int, **params: Any
) -> dict[str, Any]:
    resp = await client.get(f"{CHATS}/{chat_id}/messages", params=params, headers=who.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def texts(client: httpx.AsyncClient, who: Account, chat_id: int, **params: Any) -> list[str]:
    body = await list_messages(client, who, chat_id, **params)
    return [m["text"] for m in body["items"]]


async def get_chat(client: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    resp = await client.get(f"{CHATS}/{chat_id}", headers=who.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def my_chats(client: httpx.AsyncClient, who: Account, **params: Any) -> dict[str, Any]:
    resp = await client.get(CHATS, params=params, headers=who.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def roles(chat: dict[str, Any]) -> dict[int, str]:
    """userId -> role of a chat's members."""
    return {m["userId"]: m["role"] for m in chat["members"]}
