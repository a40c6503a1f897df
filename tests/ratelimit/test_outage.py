"""When the limiter's Redis fails: login and registration 503 (closed), refresh goes on (open).

Each test runs an app on a private Redis it then breaks for real: stopped, paused (a slow
store: calls time out), or out of memory (writes refused).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.services import PrivateRedis
from tests.fixtures.users import PASSWORD
from tests.ratelimit.conftest import (
    LOGIN,
    OFF,
    REFRESH,
    REGISTER,
    TOKEN,
    ClientFactory,
    create_user,
    log_in,
)

pytestmark = pytest.mark.services_only

LIMITS_ON = {
    "rate_limit_login_username": 10,
    "rate_limit_login_ip": 30,
    "rate_limit_register_ip": 20,
    "rate_limit_refresh_ip": 60,
}


def _stopped(redis: PrivateRedis) -> None:
    redis.stop()


def _paused(redis: PrivateRedis) -> None:
    redis.pause()


def _out_of_memory(redis: PrivateRedis) -> None:
    client = redis.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    client.close()


BREAKS: dict[str, Callable[[PrivateRedis], None]] = {
    "stopped": _stopped,
    "paused": _paused,
    "refused-writes": _out_of_memory,
}


@pytest.fixture
async def app_on_private_redis(
    database_url: str, private_redis: Any
) -> AsyncIterator[tuple[Any, PrivateRedis]]:
    redis = private_redis()
    settings = make_settings(database_url, redis.url, **{**OFF, **LIMITS_ON})
    try:
        async with running_app(settings) as app:
            yield app, redis
    finally:
        redis.resume()


@pytest.mark.parametrize("broken", list(BREAKS), ids=list(BREAKS))
async def test_login_and_registration_fail_closed_with_503(
    app_on_private_redis: tuple[Any, PrivateRedis], make_client: ClientFactory, broken: str
) -> None:
    app, redis = app_on_private_redis
    client = await make_client(app, allow_503=True)
    await create_user(client, "alice")
    await asyncio.to_thread(BREAKS[broken], redis)
    for path in (TOKEN, LOGIN):
        resp = await log_in(client, "alice", path=path)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"].isdigit()
        assert set(resp.json()) == {"detail"}
    resp = await client.post(REGISTER, json={"username": "bob", "password": PASSWORD})
    assert resp.status_code == 503


async def test_refresh_fails_open(
    app_on_private_redis: tuple[Any, PrivateRedis], make_client: ClientFactory
) -> None:
    app, redis = app_on_private_redis
    client = await make_client(app)
    await create_user(client, "alice")
    refresh_token = (await log_in(client, "alice")).json()["refresh_token"]
    await asyncio.to_thread(redis.stop)
    resp = await client.post(REFRESH, json={"refreshToken": refresh_token})
    assert resp.status_code == 200, resp.text


async def test_limits_off_need_no_store(
    database_url: str, private_redis: Any, make_client: ClientFactory
) -> None:
    redis = private_redis()
    async with running_app(make_settings(database_url, redis.url, rate_limit_enabled=False)) as app:
        client = await make_client(app)
        await create_user(client, "alice")
        await asyncio.to_thread(redis.stop)
        assert (await log_in(client, "alice")).status_code == 200
