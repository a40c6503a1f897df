"""A TOTP code is accepted once per user (RFC 6238 §5.2): at login, session login, disable."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.auth.conftest import assert_unauthenticated
from tests.auth.test_otp import DISABLE, TOKEN, enable, otp_enabled
from tests.fixtures.otp import code_at as at
from tests.fixtures.users import PASSWORD, Account

LOGIN = "/api/v1/auth/login"


def form(code: str) -> dict[str, str]:
    return {"username": "alice", "password": PASSWORD, "otp": code}


def assert_invalid_otp(resp: httpx.Response) -> None:
    assert_unauthenticated(resp)
    assert resp.json()["detail"] == "invalid_otp"


async def test_a_code_logs_in_once(client: httpx.AsyncClient, alice: Account) -> None:
    secret = await enable(client, alice)  # with the previous step's code
    code = at(secret, 0)
    assert (await client.post(TOKEN, data=form(code))).status_code == 200
    again = await client.post(TOKEN, data=form(code))
    assert_invalid_otp(again)
    assert again.json()["error"] == "invalid_grant"
    # Nor in a browser session login.
    assert_invalid_otp(await client.post(LOGIN, data=form(code)))
    # The next step's code is a new one.
    assert (await client.post(LOGIN, data=form(at(secret, 1)))).status_code == 200


async def test_a_code_older_than_the_last_accepted_is_refused(
    client: httpx.AsyncClient, alice: Account
) -> None:
    secret = await enable(client, alice)
    assert (await client.post(TOKEN, data=form(at(secret, 1)))).status_code == 200
    # The current code was never used, but it is older than one that was.
    assert_invalid_otp(await client.post(TOKEN, data=form(at(secret, 0))))


async def test_the_enabling_code_does_not_log_in(client: httpx.AsyncClient, alice: Account) -> None:
    secret = (await client.post("/api/v1/auth/otp/setup", headers=alice.headers)).json()["secret"]
    code = at(secret, 0)
    enabled = await client.post(
        "/api/v1/auth/otp/enable", json={"code": code}, headers=alice.headers
    )
    assert enabled.status_code == 204
    assert_invalid_otp(await client.post(TOKEN, data=form(code)))


async def test_a_code_used_at_login_does_not_disable(
    client: httpx.AsyncClient, alice: Account
) -> None:
    secret = await enable(client, alice)
    code = at(secret, 0)
    assert (await client.post(TOKEN, data=form(code))).status_code == 200
    replay = await client.post(DISABLE, json={"code": code}, headers=alice.headers)
    assert replay.status_code == 400, replay.text
    assert await otp_enabled(client, alice) is True
    fresh = await client.post(DISABLE, json={"code": at(secret, 1)}, headers=alice.headers)
    assert fresh.status_code == 204
    assert await otp_enabled(client, alice) is False
    # A new secret's codes are new codes, even of the time step just used with the old one.
    new = (await client.post("/api/v1/auth/otp/setup", headers=alice.headers)).json()["secret"]
    on = await client.post(
        "/api/v1/auth/otp/enable", json={"code": at(new, 1)}, headers=alice.headers
    )
    assert on.status_code == 204, on.text


async def test_one_code_sent_concurrently_logs_in_once(
    client: httpx.AsyncClient, alice: Account
) -> None:
    secret = await enable(client, alice)
    code = at(secret, 0)
    answers = await asyncio.gather(*(client.post(TOKEN, data=form(code)) for _ in range(6)))
    assert Counter(r.status_code for r in answers) == {200: 1, 401: 5}
    assert {r.json()["detail"] for r in answers if r.status_code == 401} == {"invalid_otp"}
