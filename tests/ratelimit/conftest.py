"""Apps built per test with their own rate limits, and clients that come from an address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

import httpx
import pytest

from tests.fixtures.apps import AppWith
from tests.fixtures.http import guarded_client
from tests.fixtures.users import PASSWORD, sign_up

TOKEN = "/api/v1/auth/token"
LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"

# Every limit off unless a test turns it on, so that each test sees only the one it tests.
OFF = {
    "rate_limit_login_username": 0,
    "rate_limit_login_ip": 0,
    "rate_limit_register_ip": 0,
    "rate_limit_refresh_ip": 0,
    "rate_limit_otp_user": 0,
}


class ClientFactory(Protocol):
    async def __call__(
        self, app: Any, address: str = "203.0.113.1", *, allow_503: bool = False
    ) -> httpx.AsyncClient: ...


@pytest.fixture
def make_app(app_with: AppWith) -> AppWith:
    """Start an app (lifespan entered) with every limit off but those in `overrides`."""

    async def make(**overrides: Any) -> Any:
        return await app_with(**{**OFF, **overrides})

    return make


@pytest.fixture
def make_client(exit_stack: AsyncExitStack) -> ClientFactory:
    """A guarded client whose requests come from `address` (but a 503 passes with
    `allow_503`, for the tests of outages)."""

    async def make(
        app: Any, address: str = "203.0.113.1", *, allow_503: bool = False
    ) -> httpx.AsyncClient:
        client = guarded_client(app, address=address, allow={503} if allow_503 else ())
        return await exit_stack.enter_async_context(client)

    return make


async def create_user(client: httpx.AsyncClient, username: str) -> None:
    """Register `username` with the test password."""
    await sign_up(client, username)


async def log_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, path: str = TOKEN
) -> httpx.Response:
    """One password-grant (or browser, with `path=LOGIN`) login attempt."""
    return await client.post(path, data={"username": username, "password": password})


def assert_limited(resp: httpx.Response) -> int:
    """429 with a JSON detail and a positive whole `Retry-After`; returns the seconds."""
    assert resp.status_code == 429, resp.text
    assert set(resp.json()) == {"detail"}
    assert isinstance(resp.json()["detail"], str)
    retry_after = resp.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1
    return int(retry_after)


async def until_allowed(
    send: Callable[[], Awaitable[httpx.Response]], *, deadline: float = 10.0
) -> tuple[httpx.Response, float]:
    """Repeat `send` until it is not answered 429; the answer and the seconds it took.

    Limited requests count for nothing, so polling does not push the limit further out.
    """
    start = time.monotonic()
    while True:
        resp = await send()
        elapsed = time.monotonic() - start
        if resp.status_code != 429:
            return resp, elapsed
        assert elapsed < deadline, f"still limited after {elapsed:.1f}s"
        await asyncio.sleep(0.05)  # polling across the limiter's clock: nothing to await
