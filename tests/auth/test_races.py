"""Concurrent requests that must agree: one account per name, one refresh per token."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import PASSWORD, Account

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


async def test_a_refresh_token_spent_concurrently_works_once(
    client: httpx.AsyncClient, alice: Account
) -> None:
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/auth/refresh", json={"refreshToken": alice.refresh_token})
            for _ in range(N)
        )
    )
    assert Counter(r.status_code for r in answers) == {200: 1, 401: N - 1}
