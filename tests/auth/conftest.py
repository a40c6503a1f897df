"""Every request here goes through a client that refuses 5xx answers; hashing is cheap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Protocol

import httpx
import pytest
from asgi_lifespan import LifespanManager

from parley.app import create_app
from tests.conftest import make_settings
from tests.ops.harness import guarded_client, use_cheap_password_hashing


class AppWith(Protocol):
    async def __call__(self, **overrides: Any) -> Any: ...


class ClientWith(Protocol):
    async def __call__(self, **overrides: Any) -> httpx.AsyncClient: ...


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's in-process client; any 5xx answer or traceback fails the test."""
    async with guarded_client(app) as c:
        yield c


@pytest.fixture
async def _stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def app_with(database_url: str, redis_url: str | None, _stack: AsyncExitStack) -> AppWith:
    """A new app (lifespan entered) with these settings overridden."""

    async def make(**overrides: Any) -> Any:
        app = create_app(make_settings(database_url, redis_url, **overrides))
        await _stack.enter_async_context(LifespanManager(app, startup_timeout=30))
        return app

    return make


@pytest.fixture
def client_with(app_with: AppWith, _stack: AsyncExitStack) -> ClientWith:
    """A guarded client of a new app with these settings overridden."""

    async def make(**overrides: Any) -> httpx.AsyncClient:
        return await _stack.enter_async_context(guarded_client(await app_with(**overrides)))

    return make


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_cheap_password_hashing(monkeypatch)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def assert_unauthenticated(resp: httpx.Response) -> None:
    """401 with the Bearer challenge and a JSON detail."""
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert isinstance(resp.json()["detail"], str)
