"""Login limits: failed attempts per username, every attempt per client address."""

from __future__ import annotations

import asyncio
import time

import httpx
import pyotp
import pytest

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

WRONG = "wrong password!"


@pytest.mark.parametrize("path", [TOKEN, LOGIN])
async def test_failed_logins_per_username_are_limited(
    make_app: AppWith, make_client: ClientFactory, path: str
) -> None:
    app = await make_app(rate_limit_login_username=3, rate_limit_login_username_seconds=900)
    client = await make_client(app)
    await create_user(client, "alice")
    for _ in range(3):
        assert (await log_in(client, "alice", WRONG, path)).status_code == 401
    retry_after = assert_limited(await log_in(client, "alice", WRONG, path))
    # One attempt more every 900/3 s: the answer says how long until then.
    assert 299 <= retry_after <= 300
    # The right password is refused too while the name is limited: no guessing through it.
    assert_limited(await log_in(client, "alice", path=path))


async def test_the_username_limit_holds_across_addresses_and_login_routes(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_username=4)
    first, second = await make_client(app, "198.51.100.1"), await make_client(app, "198.51.100.2")
    await create_user(first, "alice")
    for client, path in [(first, TOKEN), (second, TOKEN), (first, LOGIN), (second, LOGIN)]:
        assert (await log_in(client, "alice", WRONG, path)).status_code == 401
    assert_limited(await log_in(second, "ALICE", WRONG))  # names count case-insensitively
    assert_limited(await log_in(first, "alice", WRONG, LOGIN))


async def test_other_users_are_not_affected(make_app: AppWith, make_client: ClientFactory) -> None:
    app = await make_app(rate_limit_login_username=2)
    client = await make_client(app)
    await create_user(client, "alice")
    await create_user(client, "bob")
    for _ in range(2):
        await log_in(client, "alice", WRONG)
    assert_limited(await log_in(client, "alice"))
    assert (await log_in(client, "bob")).status_code == 200
    assert (await log_in(client, "bob", WRONG)).status_code == 401


async def test_successful_logins_do_not_count_against_the_username(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_username=3)
    client = await make_client(app)
    await create_user(client, "alice")
    for _ in range(10):
        assert (await log_in(client, "alice")).status_code == 200
    for _ in range(3):
        assert (await log_in(client, "alice", WRONG)).status_code == 401
    assert_limited(await log_in(client, "alice", WRONG))


async def test_a_limited_unknown_user_looks_like_a_limited_real_one(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_username=3, rate_limit_login_username_seconds=600)
    client = await make_client(app)
    await create_user(client, "alice")
    answers: dict[str, list[httpx.Response]] = {"alice": [], "nobody": []}
    for name, responses in answers.items():
        for _ in range(5):
            responses.append(await log_in(client, name, WRONG))
    real, unknown = answers["alice"], answers["nobody"]
    assert (
        [r.status_code for r in real] == [r.status_code for r in unknown] == [401] * 3 + [429] * 2
    )
    for a, b in zip(real, unknown, strict=True):
        assert a.json() == b.json()
        assert set(a.headers) == set(b.headers)
        assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
    assert real[-1].headers["retry-after"] == unknown[-1].headers["retry-after"]


async def test_every_login_attempt_counts_against_the_address(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_ip=5, rate_limit_login_ip_seconds=60)
    here, elsewhere = await make_client(app, "192.0.2.10"), await make_client(app, "192.0.2.11")
    await create_user(here, "alice")
    # Successes and failures alike, for any names: this is what stops credential stuffing.
    for name, password in [("alice", None), ("bob", WRONG), ("carol", WRONG), ("alice", None)]:
        resp = await log_in(here, name, password) if password else await log_in(here, name)
        assert resp.status_code in (200, 401)
    assert (await log_in(here, "dave", WRONG, LOGIN)).status_code == 401
    retry_after = assert_limited(await log_in(here, "alice"))
    assert 1 <= retry_after <= 12  # one attempt more every 60/5 s
    # Another address is not limited, not even for the same account.
    assert (await log_in(elsewhere, "alice")).status_code == 200


async def test_the_address_is_the_forwarded_one_behind_the_proxy(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    # The app itself reads X-Forwarded-For, from the proxies it trusts (a network here).
    app = await make_app(rate_limit_login_ip=2, trusted_proxies="10.0.0.0/8")
    nginx = await make_client(app, "10.0.0.2")

    def via(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"203.0.113.66, {address}"}  # a client's own claim, first

    for _ in range(2):
        resp = await nginx.post(
            TOKEN, data={"username": "a", "password": WRONG}, headers=via("1.1.1.1")
        )
        assert resp.status_code == 401
    limited = await nginx.post(
        TOKEN, data={"username": "a", "password": WRONG}, headers=via("1.1.1.1")
    )
    assert_limited(limited)
    other = await nginx.post(
        TOKEN, data={"username": "a", "password": WRONG}, headers=via("2.2.2.2")
    )
    assert other.status_code == 401


async def test_ipv6_clients_are_limited_per_64_network(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_ip=2)
    one, same_net = (
        await make_client(app, "2001:db8:1:2::1"),
        await make_client(app, "2001:db8:1:2::ffff"),
    )
    other_net = await make_client(app, "2001:db8:1:3::1")
    await log_in(one, "x", WRONG)
    await log_in(same_net, "y", WRONG)
    assert_limited(await log_in(one, "z", WRONG))
    assert_limited(await log_in(same_net, "z", WRONG))
    assert (await log_in(other_net, "z", WRONG)).status_code == 401


async def test_concurrent_guesses_cannot_pass_the_limit(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_username=5)
    client = await make_client(app)
    await create_user(client, "alice")
    answers = await asyncio.gather(*(log_in(client, "alice", WRONG) for _ in range(20)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 5 + [429] * 15


async def test_the_limit_lifts_after_the_window(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_username=2, rate_limit_login_username_seconds=1)
    client = await make_client(app)
    await create_user(client, "alice")
    for _ in range(2):
        await log_in(client, "alice", WRONG)
    retry_after = assert_limited(await log_in(client, "alice", WRONG))
    assert retry_after == 1
    resp, waited = await until_allowed(lambda: log_in(client, "alice", WRONG))
    assert resp.status_code == 401
    assert waited <= retry_after + 1
    # One attempt came back (the window is 1 s for 2), not the whole burst...
    assert_limited(await log_in(client, "alice", WRONG))
    # ...which a success does not spend (and polling with the right password finds).
    resp, _ = await until_allowed(lambda: log_in(client, "alice"))
    assert resp.status_code == 200


async def test_the_whole_burst_is_back_after_a_quiet_window(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_ip=3, rate_limit_login_ip_seconds=1)
    client = await make_client(app)
    for _ in range(3):
        await log_in(client, "x", WRONG)
    assert_limited(await log_in(client, "x", WRONG))
    await asyncio.sleep(1.05)  # the window itself is what is tested: nothing else to await
    for _ in range(3):
        assert (await log_in(client, "x", WRONG)).status_code == 401
    assert_limited(await log_in(client, "x", WRONG))


async def test_otp_required_is_no_failed_attempt_but_a_wrong_code_is(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_login_username=3)
    client = await make_client(app)
    await create_user(client, "alice")
    token = (await log_in(client, "alice")).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    secret = (await client.post("/api/v1/auth/otp/setup", headers=auth)).json()["secret"]
    totp = pyotp.TOTP(secret)
    enable = await client.post("/api/v1/auth/otp/enable", json={"code": totp.now()}, headers=auth)
    assert enable.status_code == 204
    # The two-step login of the clients: the password alone, then with the code.
    for _ in range(5):
        first = await log_in(client, "alice")
        assert (first.status_code, first.json()["detail"]) == (401, "otp_required")
    valid = {totp.at(time.time() + shift) for shift in (-60, -30, 0, 30, 60)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    for _ in range(3):
        data = {"username": "alice", "password": PASSWORD, "otp": wrong}
        resp = await client.post(TOKEN, data=data)
        assert (resp.status_code, resp.json()["detail"]) == (401, "invalid_otp")
    data = {"username": "alice", "password": PASSWORD, "otp": totp.now()}
    assert_limited(await client.post(TOKEN, data=data))


@pytest.mark.parametrize(
    "overrides",
    [
        {"rate_limit_login_username": 0, "rate_limit_login_ip": 0},
        {"rate_limit_enabled": False, "rate_limit_login_username": 1, "rate_limit_login_ip": 1},
    ],
    ids=["zero", "disabled"],
)
async def test_login_limits_can_be_turned_off(
    make_app: AppWith, make_client: ClientFactory, overrides: dict[str, object]
) -> None:
    app = await make_app(**overrides)
    client = await make_client(app)
    await create_user(client, "alice")
    for _ in range(30):
        assert (await log_in(client, "alice", WRONG)).status_code == 401
    assert (await log_in(client, "alice")).status_code == 200
