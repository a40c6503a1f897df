"""Wrong one-time codes per user: on /auth/otp/enable, /auth/otp/disable and login's `otp`."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.fixtures.otp import code_at as at
from tests.fixtures.otp import previous_code
from tests.fixtures.otp import wrong_code as wrong
from tests.fixtures.users import PASSWORD
from tests.ratelimit.conftest import (
    LOGIN,
    TOKEN,
    AppWith,
    ClientFactory,
    assert_limited,
    create_user,
    log_in,
    until_allowed,
)

SETUP = "/api/v1/auth/otp/setup"
ENABLE = "/api/v1/auth/otp/enable"
DISABLE = "/api/v1/auth/otp/disable"


async def signed_in(client: httpx.AsyncClient, username: str) -> tuple[dict[str, str], int]:
    """Create and log in `username`: its bearer header and id."""
    await create_user(client, username)
    token = (await log_in(client, username)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    return headers, (await client.get("/api/v1/users/me", headers=headers)).json()["id"]


async def with_secret(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.post(SETUP, headers=headers)).json()["secret"])


async def test_wrong_codes_on_enable_and_disable_are_limited_per_user(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_otp_user=3, rate_limit_otp_user_seconds=300)
    client = await make_client(app)
    alice, _ = await signed_in(client, "alice")
    bob, _ = await signed_in(client, "bob")
    secret = await with_secret(client, alice)
    for _ in range(3):
        assert (
            await client.post(ENABLE, json={"code": wrong(secret)}, headers=alice)
        ).status_code == 400
    retry_after = assert_limited(
        await client.post(ENABLE, json={"code": wrong(secret)}, headers=alice)
    )
    assert 99 <= retry_after <= 100  # one more every 300/3 s
    # The right code too, while limited: no guessing through the limit.
    assert_limited(await client.post(ENABLE, json={"code": at(secret)}, headers=alice))
    # Another user is not affected.
    bob_secret = await with_secret(client, bob)
    assert (
        await client.post(ENABLE, json={"code": at(bob_secret)}, headers=bob)
    ).status_code == 204


async def test_wrong_codes_at_login_are_limited_per_user_from_any_address(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_otp_user=3)
    here, elsewhere = await make_client(app, "192.0.2.1"), await make_client(app, "192.0.2.2")
    alice, _ = await signed_in(here, "alice")
    secret = await with_secret(here, alice)
    assert (
        await here.post(ENABLE, json={"code": await previous_code(secret)}, headers=alice)
    ).status_code == 204
    # Token and browser logins, from two addresses: one count per user.
    for client, path in ((here, TOKEN), (elsewhere, LOGIN), (here, LOGIN)):
        data = {"username": "alice", "password": PASSWORD, "otp": wrong(secret)}
        resp = await client.post(path, data=data)
        assert (resp.status_code, resp.json()["detail"]) == (401, "invalid_otp")
    right = {"username": "alice", "password": PASSWORD, "otp": at(secret)}
    assert_limited(await elsewhere.post(TOKEN, data=right))
    assert_limited(await here.post(LOGIN, data=right))
    # A wrong password is still just a wrong password: the code limit does not reveal it.
    wrong_password = {"username": "alice", "password": "not the password", "otp": at(secret)}
    assert (await here.post(TOKEN, data=wrong_password)).status_code == 401


async def test_right_codes_and_missing_codes_do_not_count(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_otp_user=2)
    client = await make_client(app)
    alice, _ = await signed_in(client, "alice")
    secret = await with_secret(client, alice)
    assert (
        await client.post(ENABLE, json={"code": await previous_code(secret)}, headers=alice)
    ).status_code == 204
    for _ in range(5):  # the first step of the two-step login: the password alone
        assert (await log_in(client, "alice")).json()["detail"] == "otp_required"
    ok = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": at(secret)}
    )
    assert ok.status_code == 200
    for _ in range(2):
        bad = {"username": "alice", "password": PASSWORD, "otp": wrong(secret)}
        assert (await client.post(TOKEN, data=bad)).status_code == 401
    assert_limited(await client.post(TOKEN, data=bad))


async def test_the_limit_lifts_by_itself(make_app: AppWith, make_client: ClientFactory) -> None:
    """How an owner recovers from a lockout without help: wait for Retry-After."""
    app = await make_app(rate_limit_otp_user=1, rate_limit_otp_user_seconds=1)
    client = await make_client(app)
    alice, _ = await signed_in(client, "alice")
    secret = await with_secret(client, alice)
    assert (
        await client.post(ENABLE, json={"code": wrong(secret)}, headers=alice)
    ).status_code == 400
    assert_limited(await client.post(ENABLE, json={"code": at(secret)}, headers=alice))
    resp, _ = await until_allowed(
        lambda: client.post(ENABLE, json={"code": at(secret)}, headers=alice)
    )
    assert resp.status_code == 204


@pytest.mark.services_only
async def test_an_operator_can_clear_a_lockout(
    make_app: AppWith, make_client: ClientFactory, redis_url: str
) -> None:
    """The key docs/deploy.md tells operators to delete: parley:rl:otp:user:<sha256(id)[:32]>."""
    import redis.asyncio as aioredis

    app = await make_app(rate_limit_otp_user=1, rate_limit_otp_user_seconds=3600)
    client = await make_client(app)
    alice, alice_id = await signed_in(client, "alice")
    secret = await with_secret(client, alice)
    assert (
        await client.post(ENABLE, json={"code": wrong(secret)}, headers=alice)
    ).status_code == 400
    assert_limited(await client.post(ENABLE, json={"code": at(secret)}, headers=alice))
    key = "parley:rl:otp:user:" + hashlib.sha256(str(alice_id).encode()).hexdigest()[:32]
    store = aioredis.from_url(redis_url)
    try:
        assert await store.delete(key) == 1
    finally:
        await store.aclose()
    assert (await client.post(ENABLE, json={"code": at(secret)}, headers=alice)).status_code == 204


async def test_the_otp_limit_can_be_turned_off(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_otp_user=0)
    client = await make_client(app)
    alice, _ = await signed_in(client, "alice")
    secret = await with_secret(client, alice)
    for _ in range(10):
        assert (
            await client.post(ENABLE, json={"code": wrong(secret)}, headers=alice)
        ).status_code == 400
    code = at(secret)
    assert (await client.post(ENABLE, json={"code": code}, headers=alice)).status_code == 204
    # Without the limit, codes are still accepted once: the enabling one does not disable.
    for _ in range(10):
        replay = await client.post(DISABLE, json={"code": code}, headers=alice)
        assert replay.status_code == 400
