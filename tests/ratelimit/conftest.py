"""Apps built per test with their own rate limits, and clients that come from an address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

import httpx
import pytest
from asgi_lifespan import LifespanManager

from parley.app import create_app
from tests.conftest import PASSWORD, make_settings
from tests.ops.harness import BASE_URL, reject_server_errors, use_cheap_password_hashing

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


class AppFactory(Protocol):
    async def __call__(self, **overrides: Any) -> Any: ...


class ClientFactory(Protocol):
    async def __call__(
        self, app: Any, address: str = "203.0.113.1", *, allow_503: bool = False
    ) -> httpx.AsyncClient: ...


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_cheap_password_hashing(monkeypatch)


@pytest.fixture
async def _stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def make_app(database_url: str, redis_url: str | None, _stack: AsyncExitStack) -> AppFactory:
    """Start an app (lifespan entered) with every limit off but those in `overrides`."""

    async def make(**overrides: Any) -> Any:
        app = create_app(make_settings(database_url, redis_url, **{**OFF, **overrides}))
        await _stack.enter_async_context(LifespanManager(app, startup_timeout=30))
        return app

    return make


@pytest.fixture
def make_client(_stack: AsyncExitStack) -> ClientFactory:
    """An in-process client whose requests come from `address`; a 5xx fails the test
    (but a 503 with `allow_503`, for the tests of outages)."""

    async def make(
        app: Any, address: str = "203.0.113.1", *, allow_503: bool = False
    ) -> httpx.AsyncClient:
        async def check(response: httpx.Response) -> None:
            if not (allow_503 and response.status_code == 503):
                await reject_server_errors(response)

        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        client = httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, event_hooks={"response": [check]}
        )
        return await _stack.enter_async_context(client)

    return make


async def create_user(client: httpx.AsyncClient, username: str) -> None:
    """Register `username` with the test password."""
    resp = await client.post(REGISTER, json={"username": username, "password": PASSWORD})
    assert resp.status_code == 201, resp.text


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
