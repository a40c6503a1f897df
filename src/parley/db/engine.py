"""The async engine and session factory for one database URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # Wait for another writer as long as the driver's connect timeout does (30 s): a second
    # `parley serve` on the same file, starting while the first migrates or sweeps, must
    # not fail its own startup with "database is locked".
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`, with SQLite made safe for concurrent use."""
    if url.startswith("sqlite"):
        # One writer at a time: SQLAlchemy's default pool for the URL is enough, and an
        # in-memory database's pool takes no size.
        kwargs.pop("pool_size", None)
        kwargs.pop("max_overflow", None)
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 40)
    kwargs.setdefault("max_overflow", 0)
    # A ping per checkout costs three round trips per request; recycling old connections and
    # invalidating the pool on a disconnect error (SQLAlchemy does) is enough.
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kwargs)


ExitHook = Callable[[AsyncSession], Awaitable[None]]


class Database:
    """An engine plus its session factory: the only way code reaches the database."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        # A session class of this database's own, so that session events (the outbox's)
        # are listened to per database, not for every database of the process.
        self.sync_session_class: type[Session] = type("ParleySession", (Session,), {})
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=self.sync_session_class
        )
        self._exit_hooks: list[ExitHook] = []

    def add_exit_hook(self, hook: ExitHook) -> None:
        """Run `hook` with each session when its `session()` block ends (raised or not)."""
        self._exit_hooks.append(hook)

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite backend."""
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that is rolled back if the block raises, and closed at the end.

        Leaving the block waits for what its commits handed on (see `add_exit_hook`).
        """
        async with self.sessionmaker() as session:
            try:
                yield session
            finally:
                for hook in self._exit_hooks:
                    await hook(session)

    async def ping(self) -> None:
        """One real round trip; raises if the database cannot answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
