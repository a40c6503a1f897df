"""Fixtures: a Parley app against real services (PostgreSQL + Redis) or embedded (SQLite).

`PARLEY_TEST_MODE=services` (PostgreSQL at PARLEY_TEST_PG, Redis at PARLEY_TEST_REDIS) or
`embedded` (the default). Each run gets a fresh database; each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from parley.auth import passwords
from parley.db.engine import Database
from parley.db.migrate import upgrade_to_head
from parley.models import Base
from parley.settings import Settings
from tests.fixtures.apps import AppWith, ClientWith, make_settings, running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.users import Account, register

pytest_plugins = ["tests.fixtures.plugin"]

MODE = os.environ.get("PARLEY_TEST_MODE", "embedded")
PG_ADMIN_URL = os.environ.get("PARLEY_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS", "redis://127.0.0.1:6379/15")


def pytest_report_header() -> str:
    return f"parley test mode: {MODE}"


# A test that takes one of these is never the same in both modes, whatever its marks say.
MODE_FIXTURES = frozenset({"database_url", "own_database_url", "redis_url"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "services_only: needs Redis (runs in the services-mode pass of the suite)"
    )
    config.addinivalue_line(
        "markers",
        "mode_independent: uses neither the suite's database nor Redis, so it runs once, in "
        "the embedded pass",
    )


def _runs_in_this_pass(item: pytest.Item) -> bool:
    if MODE == "services":
        return item.get_closest_marker("mode_independent") is None or bool(
            MODE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
    return item.get_closest_marker("services_only") is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite always runs both passes, so a test runs only where it means something:
    one marked services_only in the services pass, one marked mode_independent in the
    embedded pass. The others are deselected (not skipped)."""
    keep: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (keep if _runs_in_this_pass(item) else deselected).append(item)
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


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    """One running app (lifespan entered) for the whole session."""
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's in-process client; any 5xx answer or traceback fails the test."""
    async with guarded_client(app) as c:
        yield c


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    """What a test opened through the factories below, closed after it."""
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def app_with(database_url: str, redis_url: str | None, exit_stack: AsyncExitStack) -> AppWith:
    """A new app (lifespan entered, on the run's database) with these settings overridden."""

    async def make(**overrides: Any) -> FastAPI:
        settings = make_settings(database_url, redis_url, **overrides)
        return await exit_stack.enter_async_context(running_app(settings))

    return make


@pytest.fixture
def client_with(app_with: AppWith, exit_stack: AsyncExitStack) -> ClientWith:
    """A guarded client of a new app with these settings overridden."""

    async def make(**overrides: Any) -> httpx.AsyncClient:
        app = await app_with(**overrides)
        return await exit_stack.enter_async_context(guarded_client(app))

    return make


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The run's database, for tests that call the services directly."""
    passwords.configure(settings)  # what the app does at start: cheap hashing
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


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


async def delete_bus_keys(redis_url: str) -> None:
    """Delete Parley's own keys (`parley:*`) from a Redis database, keeping a broker's."""
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    keys = [key async for key in r.scan_iter(match="parley:*", count=1000)]
    if keys:
        await r.delete(*keys)
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


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await register(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    return await register(client, "bob")


@pytest.fixture
async def carol(client: httpx.AsyncClient) -> Account:
    return await register(client, "carol")
