"""Concurrent requests that must agree: one account per name, one successor per token."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.auth.conftest import bearer
from tests.fixtures.users import PASSWORD, Account

N = 6


async def test_one_username_registered_concurrently_gives_one_account(
    client: httpx.AsyncClient,
) -> None:
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
            for name in ["racer", "RACER", "Racer"] * (N // 3)
        )
    )
    assert Counter(r.status_code for r in answers) == {201: 1, 409: N - 1}


async def test_a_refresh_token_spent_concurrently_gives_every_caller_the_same_pair(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Two tabs (here six) refreshing at once all stay signed in, with one successor."""
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/auth/refresh", json={"refreshToken": alice.refresh_token})
            for _ in range(N)
        )
    )
    assert Counter(r.status_code for r in answers) == {200: N}, [r.text for r in answers]
    successors = {r.json()["refresh_token"] for r in answers}
    assert len(successors) == 1
    for resp in answers:
        me = await client.get("/api/v1/users/me", headers=bearer(resp.json()["access_token"]))
        assert me.json()["id"] == alice.id
    # The family lives on: the successor refreshes, once more concurrently.
    (successor,) = successors
    again = await asyncio.gather(
        *(client.post("/api/v1/auth/refresh", json={"refreshToken": successor}) for _ in range(N))
    )
    assert Counter(r.status_code for r in again) == {200: N}
    assert len({r.json()["refresh_token"] for r in again}) == 1
