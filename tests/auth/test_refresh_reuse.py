"""The reuse interval of refresh tokens: the same token again within it gets the same new
pair (two tabs refreshing at once); any other reuse still revokes the whole family."""

from __future__ import annotations

import asyncio

import httpx

from tests.auth.conftest import assert_unauthenticated, bearer
from tests.fixtures.apps import ClientWith
from tests.fixtures.users import PASSWORD, Account, register

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refreshToken": token})


async def test_the_same_token_again_at_once_gets_the_same_pair(
    client: httpx.AsyncClient, alice: Account
) -> None:
    first = await refresh(client, alice.refresh_token)
    # The other tab comes a second later: a token issued anew then would differ (its `iat`).
    await asyncio.sleep(1.1)  # the passing of time is what is tested: nothing to await
    second = await refresh(client, alice.refresh_token)
    assert first.status_code == second.status_code == 200, second.text
    assert second.json()["refresh_token"] == first.json()["refresh_token"]
    assert second.json()["access_token"] == first.json()["access_token"]
    assert 0 < second.json()["expires_in"] <= first.json()["expires_in"]
    assert second.json()["refresh_token"] != alice.refresh_token
    me = await client.get("/api/v1/users/me", headers=bearer(second.json()["access_token"]))
    assert me.json()["id"] == alice.id
    # The family was not revoked: the successor works.
    assert (await refresh(client, first.json()["refresh_token"])).status_code == 200


async def test_the_same_pair_again_has_a_fresh_access_token_once_the_first_expired(
    client_with: ClientWith,
) -> None:
    client = await client_with(access_token_ttl_seconds=2)
    alice = await register(client, "alice")
    first = (await refresh(client, alice.refresh_token)).json()
    await asyncio.sleep(2.1)  # the access token's lifetime is what is tested: nothing to await
    again = (await refresh(client, alice.refresh_token)).json()
    assert again["refresh_token"] == first["refresh_token"]
    assert again["access_token"] != first["access_token"]
    assert again["expires_in"] > 0
    me = await client.get("/api/v1/users/me", headers=bearer(again["access_token"]))
    assert me.status_code == 200, me.text


async def test_no_grace_once_the_successor_was_used(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """The other tab already moved on: the old token coming back now is a stolen copy."""
    second = (await refresh(client, alice.refresh_token)).json()["refresh_token"]
    # Until then, the second tab gets the same successor.
    assert (await refresh(client, alice.refresh_token)).json()["refresh_token"] == second
    third = (await refresh(client, second)).json()["refresh_token"]
    assert_unauthenticated(await refresh(client, alice.refresh_token))
    assert_unauthenticated(await refresh(client, third))


async def test_no_grace_once_the_successor_was_logged_out(
    client: httpx.AsyncClient, alice: Account
) -> None:
    second = (await refresh(client, alice.refresh_token)).json()["refresh_token"]
    assert (await refresh(client, alice.refresh_token)).json()["refresh_token"] == second
    assert (await client.post(LOGOUT, json={"refreshToken": second})).status_code == 204
    assert_unauthenticated(await refresh(client, alice.refresh_token))
    assert_unauthenticated(await refresh(client, second))


async def test_reuse_after_the_interval_revokes_the_family(client_with: ClientWith) -> None:
    client = await client_with(refresh_reuse_interval_seconds=0.5)
    alice = await register(client, "alice")
    other = await client.post(
        "/api/v1/auth/token", data={"username": "alice", "password": PASSWORD}
    )
    second = await refresh(client, alice.refresh_token)
    within = await refresh(client, alice.refresh_token)
    assert within.json()["refresh_token"] == second.json()["refresh_token"]
    await asyncio.sleep(0.6)  # the interval itself is what is tested: nothing to await
    assert_unauthenticated(await refresh(client, alice.refresh_token))
    assert_unauthenticated(await refresh(client, second.json()["refresh_token"]))
    # Only that family: another login of the same user keeps working.
    assert (await refresh(client, other.json()["refresh_token"])).status_code == 200
