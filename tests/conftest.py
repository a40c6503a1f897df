"""Fixtures: a Parley app against real services (PostgreSQL + Redis) or embedded (SQLite).

`PARLEY_TEST_MODE=services` (PostgreSQL at PARLEY_TEST_PG, Redis at PARLEY_TEST_REDIS) or
`embedded` (the default). Each run gets a fresh database; each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from parley.app import create_app
from parley.db.migrate import upgrade_to_head
from parley.models import Base
from parley.settings import Settings

pytest_plugins = ["tests.fixtures.plugin"]

MODE = os.environ.get("PARLEY_TEST_MODE", "embedded")
PG_ADMIN_URL = os.environ.get("PARLEY_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS", "redis://127.0.0.1:6379/15")
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"


def pytest_report_header() -> str:
    return f"parley test mode: {MODE}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "services_only: needs Redis (runs in the services-mode pass of the suite)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked services_only run in the services pass and are deselected (not skipped)
    in the embedded pass, since the suite always runs both."""
    if MODE == "services":
        return
    keep = [i for i in items if i.get_closest_marker("services_only") is None]
    deselected = [i for i in items if i.get_closest_marker("services_only") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


async def _create_pg_database(name: str) -> None:
    engine = create_async_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _drop_pg_database(name: str) -> None:
    engine = create_async_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test run."""
    with migrated_database(tmp_path_factory) as url:
        yield url


@pytest.fixture
def own_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for one test (whose apps must be alone on it)."""
    with migrated_database(tmp_path_factory) as url:
        yield url


@contextmanager
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new, migrated database (a SQLite file, or a PostgreSQL database), dropped after."""
    if MODE == "services":
        name = f"parley_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_create_pg_database(name))
        url = f"{PG_ADMIN_URL}/{name}"
        upgrade_to_head(url)
        yield url
        asyncio.run(_drop_pg_database(name))
    else:
        path: Path = tmp_path_factory.mktemp("db") / "parley.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_to_head(url)
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """The Redis URL in services mode, None when embedded."""
    return REDIS_URL if MODE == "services" else None


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str | None) -> Settings:
    """Settings for the app under test."""
    return make_settings(database_url, redis_url)


def make_settings(database_url: str, redis_url: str | None, **overrides: Any) -> Settings:
    """Test settings, with any field overridden."""
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": TEST_SECRET,
        "log_format": "console",
        "log_level": "WARNING",
        "fetch_allow_private": True,
        # Many apps start in one test process: freezing each one's objects would keep them
        # (and their cycles) alive for the whole run. Server subprocesses keep the default.
        "gc_tuning": False,
        # Many apps share one PostgreSQL (100 connections): a concurrency test must not
        # leave 40 idle ones behind in the session's app.
        "database_pool_size": 10,
        # The suite registers and logs in hundreds of times a minute from one address: limits
        # that never trip, so that the limiter still runs on every auth request
        # (tests/ratelimit sets the ones it tests).
        "rate_limit_login_username": 1_000_000,
        "rate_limit_login_ip": 1_000_000,
        "rate_limit_register_ip": 1_000_000,
        "rate_limit_refresh_ip": 1_000_000,
        "rate_limit_otp_user": 1_000_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    """One running app (lifespan entered) for the whole session."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
        yield c


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test starts with empty tables (and an empty Redis database in services mode)."""
    uses_db = "database_url" in request.fixturenames
    url = request.getfixturevalue("database_url") if uses_db else None
    redis = request.getfixturevalue("redis_url") if uses_db else None
    yield
    if url is None:
        return
    await truncate_all(url)
    if redis:
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis)
        await r.flushdb()
        await r.aclose()


async def truncate_all(url: str) -> None:
    """Delete every row of every table."""
    engine = create_async_engine(url)
    # The deployment's instance id stays: it is made once, by the first migration.
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "parley_instance"]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Ids keep counting up across tests: a task message a worker still holds from an
            # earlier test must never name a row of a later one.
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - our own names
    await engine.dispose()


@dataclass
class Account:
    """A registered user with a valid access token."""

    id: int
    username: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(client: httpx.AsyncClient, username: str, **extra: Any) -> Account:
    """Register `username` and log in with the password grant."""
    resp = await client.post(
        "/api/v1/auth/register", json={"username": username, "password": PASSWORD, **extra}
    )
    assert resp.status_code == 201, resp.text
    user_id = resp.json()["id"]
    tok = await client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert tok.status_code == 200, tok.text
    body = tok.json()
    return Account(user_id, username, body["access_token"], body["refresh_token"])


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await register(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    return await register(client, "bob")


@pytest.fixture
async def carol(client: httpx.AsyncClient) -> Account:
    return await register(client, "carol")
