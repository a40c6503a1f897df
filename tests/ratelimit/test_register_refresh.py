"""Registrations and token refreshes per client address."""

from __future__ import annotations

import pytest

from tests.fixtures.users import PASSWORD
from tests.ratelimit.conftest import (
    REFRESH,
    REGISTER,
    AppWith,
    ClientFactory,
    assert_limited,
    create_user,
    log_in,
    until_allowed,
)


async def test_registrations_per_address_are_limited(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_register_ip=3, rate_limit_register_ip_seconds=3600)
    here, elsewhere = await make_client(app, "192.0.2.1"), await make_client(app, "192.0.2.2")
    await create_user(here, "alice")
    await create_user(here, "bob")
    # A refused attempt counts too: probing for taken names is what the limit slows down.
    taken = await here.post(REGISTER, json={"username": "alice", "password": PASSWORD})
    assert taken.status_code == 409
    limited = await here.post(REGISTER, json={"username": "carol", "password": PASSWORD})
    assert 1199 <= assert_limited(limited) <= 1200  # one more every 3600/3 s
    await create_user(elsewhere, "carol")
    # Logging in is another limit.
    assert (await log_in(here, "carol")).status_code == 200


async def test_registration_limit_lifts_after_the_window(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_register_ip=1, rate_limit_register_ip_seconds=1)
    client = await make_client(app)
    await create_user(client, "alice")
    assert_limited(await client.post(REGISTER, json={"username": "bob", "password": PASSWORD}))
    resp, _ = await until_allowed(
        lambda: client.post(REGISTER, json={"username": "bob", "password": PASSWORD})
    )
    assert resp.status_code == 201


async def test_refreshes_per_address_are_limited(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    app = await make_app(rate_limit_refresh_ip=2, rate_limit_refresh_ip_seconds=60)
    here, elsewhere = await make_client(app, "192.0.2.1"), await make_client(app, "192.0.2.2")
    await create_user(here, "alice")
    refresh_token = (await log_in(here, "alice")).json()["refresh_token"]
    for _ in range(2):
        resp = await here.post(REFRESH, json={"refreshToken": refresh_token})
        assert resp.status_code == 200, resp.text
        refresh_token = resp.json()["refresh_token"]
    limited = await here.post(REFRESH, json={"refreshToken": refresh_token})
    assert 1 <= assert_limited(limited) <= 30
    # The limited request did not spend the token: it still works from elsewhere.
    assert (await elsewhere.post(REFRESH, json={"refreshToken": refresh_token})).status_code == 200
    # Invalid tokens count as well.
    assert_limited(await here.post(REFRESH, json={"refreshToken": "nonsense"}))


@pytest.mark.parametrize(
    "overrides",
    [
        {"rate_limit_register_ip": 0, "rate_limit_refresh_ip": 0},
        {"rate_limit_enabled": False, "rate_limit_register_ip": 1, "rate_limit_refresh_ip": 1},
    ],
    ids=["zero", "disabled"],
)
async def test_register_and_refresh_limits_can_be_turned_off(
    make_app: AppWith, make_client: ClientFactory, overrides: dict[str, object]
) -> None:
    app = await make_app(**overrides)
    client = await make_client(app)
    for i in range(5):
        await create_user(client, f"user{i}")
    refresh_token = (await log_in(client, "user0")).json()["refresh_token"]
    for _ in range(5):
        resp = await client.post(REFRESH, json={"refreshToken": refresh_token})
        assert resp.status_code == 200
        refresh_token = resp.json()["refresh_token"]
