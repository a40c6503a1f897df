"""When the limiter's store fails: login and registration 503 (closed), refresh goes on (open)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from parley.ratelimit.auth import LIMITER_EXTRA
from parley.ratelimit.core import Charge, Limiter
from parley.ratelimit.redis_store import RedisLimiter
from tests.conftest import PASSWORD
from tests.ratelimit.conftest import (
    LOGIN,
    REFRESH,
    REGISTER,
    TOKEN,
    AppFactory,
    ClientFactory,
    create_user,
    log_in,
)
from tests.servers import free_port


class BrokenLimiter(Limiter):
    """A store that fails every call, as Redis does when it is down or refuses writes."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def _take(self, charges: Sequence[Charge]) -> None:
        raise self.error

    async def _give_back(self, charges: Sequence[Charge]) -> None:
        raise self.error


LIMITS_ON = {
    "rate_limit_login_username": 10,
    "rate_limit_login_ip": 30,
    "rate_limit_register_ip": 20,
    "rate_limit_refresh_ip": 60,
}


async def break_limiter(app: Any, error: Exception) -> None:
    app.state.resources.extras[LIMITER_EXTRA] = BrokenLimiter(error)


@pytest.mark.parametrize(
    "error",
    [RedisConnectionError("down"), ResponseError("OOM command not allowed"), TimeoutError()],
    ids=["connection", "refused-write", "timeout"],
)
async def test_login_and_registration_fail_closed_with_503(
    make_app: AppFactory, make_client: ClientFactory, error: Exception
) -> None:
    app = await make_app(**LIMITS_ON)
    client = await make_client(app, allow_503=True)
    await create_user(client, "alice")
    await break_limiter(app, error)
    for path in (TOKEN, LOGIN):
        resp = await log_in(client, "alice", path=path)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"].isdigit()
        assert set(resp.json()) == {"detail"}
    resp = await client.post(REGISTER, json={"username": "bob", "password": PASSWORD})
    assert resp.status_code == 503


async def test_refresh_fails_open(make_app: AppFactory, make_client: ClientFactory) -> None:
    app = await make_app(**LIMITS_ON)
    client = await make_client(app)
    await create_user(client, "alice")
    refresh_token = (await log_in(client, "alice")).json()["refresh_token"]
    await break_limiter(app, RedisConnectionError("down"))
    resp = await client.post(REFRESH, json={"refreshToken": refresh_token})
    assert resp.status_code == 200, resp.text


async def test_limits_off_need_no_store(make_app: AppFactory, make_client: ClientFactory) -> None:
    app = await make_app(rate_limit_enabled=False)
    client = await make_client(app)
    await break_limiter(app, RedisConnectionError("down"))
    await create_user(client, "alice")
    assert (await log_in(client, "alice")).status_code == 200


async def test_an_unreachable_redis_is_a_503_not_a_500(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(**LIMITS_ON)
    client = await make_client(app, allow_503=True)
    await create_user(client, "alice")
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        app.state.resources.extras[LIMITER_EXTRA] = RedisLimiter(dead)
        resp = await log_in(client, "alice")
        assert resp.status_code == 503, resp.text
    finally:
        await dead.aclose()
