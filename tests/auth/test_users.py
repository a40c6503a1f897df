"""GET /users/me and GET /users?query= (username prefix search with pagination)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.auth.conftest import assert_unauthenticated
from tests.fixtures.users import Account, register

USERS = "/api/v1/users"


async def search(client: httpx.AsyncClient, who: Account, **params: object) -> httpx.Response:
    return await client.get(USERS, params=params, headers=who.headers)


async def usernames(client: httpx.AsyncClient, who: Account, **params: object) -> list[str]:
    resp = await search(client, who, **params)
    assert resp.status_code == 200, resp.text
    return [u["username"] for u in resp.json()["items"]]


async def test_me_is_the_callers_user(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.get(f"{USERS}/me", headers=alice.headers)
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == alice.id
    assert body["username"] == "alice"
    assert body["displayName"] == "alice"
    assert body["otpEnabled"] is False
    assert set(body) == {"id", "username", "displayName", "createdAt", "otpEnabled"}


async def test_me_reflects_registration(client: httpx.AsyncClient) -> None:
    who = await register(client, "Zed", displayName="Zed Z")
    body = (await client.get(f"{USERS}/me", headers=who.headers)).json()
    assert (body["username"], body["displayName"]) == ("zed", "Zed Z")


async def test_users_routes_need_authentication(client: httpx.AsyncClient) -> None:
    assert_unauthenticated(await client.get(f"{USERS}/me"))
    assert_unauthenticated(await client.get(USERS, params={"query": "a"}))


async def test_search_is_a_prefix_match_in_username_order(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for name in ("albert", "alfred", "bob", "xal", "ali"):
        await register(client, name)
    assert await usernames(client, alice, query="al") == ["albert", "alfred", "ali", "alice"]
    assert await usernames(client, alice, query="alf") == ["alfred"]
    assert await usernames(client, alice, query="ALB") == ["albert"]
    assert await usernames(client, alice, query="zzz") == []
    assert await usernames(client, alice) == ["albert", "alfred", "ali", "alice", "bob", "xal"]


async def test_search_items_are_users(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await search(client, alice, query="alice")
    body = resp.json()
    assert set(body) == {"items", "nextCursor"}
    assert body["nextCursor"] is None
    assert body["items"][0] == (await client.get(f"{USERS}/me", headers=alice.headers)).json()


async def test_like_wildcards_in_the_query_are_literal(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for name in ("a_b", "axb", "a.b", "a-b"):
        await register(client, name)
    assert await usernames(client, alice, query="a_") == ["a_b"]
    assert await usernames(client, alice, query="a%") == []
    assert await usernames(client, alice, query="a.") == ["a.b"]
    assert await usernames(client, alice, query="%") == []
    assert await usernames(client, alice, query="\\") == []


@pytest.mark.parametrize("query", ["\x00", "a\x00", "é", "😀", "a b", "'; drop table users;--"])
async def test_queries_no_username_can_match_find_nothing(
    client: httpx.AsyncClient, alice: Account, query: str
) -> None:
    assert await usernames(client, alice, query=query) == []


async def test_search_pages_through_every_match_once(
    client: httpx.AsyncClient, alice: Account
) -> None:
    names = [f"user{i:02d}" for i in range(7)]
    for name in names:
        await register(client, name)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"query": "user", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await search(client, alice, **params)).json()
        seen += [u["username"] for u in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 3
    assert seen == names
    assert pages == 3


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"query": "a" * 65},
        {"cursor": "x" * 257},
        {"cursor": "not-a-cursor"},
        {"cursor": b64(b"[1]")},
        {"cursor": b64(b'["a", "b"]')},
        {"cursor": b64(b'{"after": "a"}')},
        {"cursor": b64(b"[null]")},
        {"cursor": b64(b"\xff\xfe")},
        {"cursor": b64(b'["\\u0000"]')},
        {"cursor": b64(b'["a\\ud800"]')},
    ],
    ids=repr,
)
async def test_bad_search_parameters_are_422(
    client: httpx.AsyncClient, alice: Account, params: dict[str, object]
) -> None:
    resp = await search(client, alice, **params)
    assert resp.status_code == 422, resp.text


async def test_a_cursor_after_the_last_name_gives_an_empty_page(
    client: httpx.AsyncClient, alice: Account
) -> None:
    resp = await search(client, alice, cursor=b64(json.dumps(["zzzz"]).encode()))
    assert resp.status_code == 200
    assert resp.json() == {"items": [], "nextCursor": None}
