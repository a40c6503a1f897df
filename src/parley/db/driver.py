"""A hot statement run on the driver directly: built with SQLAlchemy Core, compiled once.

SQLAlchemy's execution layer (a Connection, an execution context, a cursor adapter and a
result object per statement) costs a few hundred microseconds of CPU; on the send path that
was a fifth of the server's time per request. `DriverQuery` compiles a Core statement once
for the engine's dialect and runs it on a pooled connection's asyncpg connection, with the
statement's bind processors applied, outside any transaction (one round trip, committed on
its own). What SQLAlchemy would do on an error is kept: driver errors are raised as
`DBAPIError`, and a lost connection is invalidated together with the pool it came from.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import asyncpg
import structlog
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from parley.db.outage import is_database_outage

log = structlog.get_logger("parley.db")

_CONSTANT = object()


def runs_on_driver(engine: AsyncEngine) -> bool:
    """True where hot statements run on the driver directly (PostgreSQL with asyncpg);
    elsewhere (SQLite) their callers take the ORM."""
    return engine.dialect.name == "postgresql"


class DriverQuery:
    """One Core statement compiled for `engine`'s dialect (PostgreSQL with asyncpg)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = str(compiled)
        names: Sequence[str] = compiled.positiontup or ()
        self._params: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            constant = _CONSTANT if bind.value is None else bind.effective_value
            self._params.append((name, constant, processor))

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for `params` (the statement's own literals filled in)."""
        values = []
        for name, constant, processor in self._params:
            value = params[name] if constant is _CONSTANT else constant
            values.append(processor(value) if processor is not None else value)
        return values

    async def fetchrow(
        self, engine: AsyncEngine, params: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        """Run the statement in autocommit on one of `engine`'s pooled connections; its
        first row, or None."""
        return await fetchrow(engine, self.sql, self.arguments(params))

    async def fetch(self, engine: AsyncEngine, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        """Run the statement in autocommit on one of `engine`'s pooled connections; its rows."""
        return await fetch(engine, self.sql, self.arguments(params))


async def fetchrow(
    engine: AsyncEngine, sql: str, arguments: Sequence[Any]
) -> asyncpg.Record | None:
    """`sql` with `arguments` on one of `engine`'s pooled connections, outside a transaction;
    its first row, or None."""
    rows = await _run(engine, sql, arguments, first_only=True)
    return rows[0] if rows else None


async def fetch(engine: AsyncEngine, sql: str, arguments: Sequence[Any]) -> list[asyncpg.Record]:
    """`sql` with `arguments` on one of `engine`'s pooled connections, outside a transaction;
    all its rows."""
    return await _run(engine, sql, arguments, first_only=False)


async def _run(
    engine: AsyncEngine, sql: str, arguments: Sequence[Any], *, first_only: bool
) -> list[asyncpg.Record]:
    generation = _generations.get(engine.sync_engine, 0)
    try:
        connection = await engine.raw_connection()
    except SQLAlchemyError:  # already in SQLAlchemy's terms (a pool timeout: 503)
        raise
    except Exception as exc:  # SQLAlchemy does not wrap what its pool's connect raises
        raise DBAPIError(sql, None, exc, connection_invalidated=is_database_outage(exc)) from exc
    lost = False
    done = False
    try:
        driver: asyncpg.Connection = connection.driver_connection
        if first_only:
            row = await driver.fetchrow(sql, *arguments)
            rows = [] if row is None else [row]
        else:
            rows = await driver.fetch(sql, *arguments)
        done = True
        return rows
    except Exception as exc:
        # An error from PostgreSQL is about the statement; anything else (the protocol,
        # the socket) leaves the connection unusable, like a lost one.
        lost = is_database_outage(exc) or not isinstance(exc, asyncpg.PostgresError)
        raise DBAPIError(sql, None, exc, connection_invalidated=lost) from exc
    finally:
        if not done:
            # Failed or cancelled half-way, the connection may still be in the middle of the
            # statement: it must never be handed out again (the pool's reset would not see
            # it, there being no transaction to roll back).
            connection.invalidate()
        await _give_back(engine, connection, lost=lost, generation=generation)


async def _give_back(engine: AsyncEngine, connection: Any, *, lost: bool, generation: int) -> None:
    """Return the connection to the pool, and start the pool afresh after a lost one. Never
    raises: what went wrong with the statement is what the caller must hear about."""
    try:
        # Returning it may close it (an overflow connection, an invalidated one): awaited
        # I/O, which SQLAlchemy's pool only does inside its greenlet.
        await greenlet_spawn(connection.close)
        if lost and _generations.get(engine.sync_engine, 0) == generation:
            # Like SQLAlchemy on a disconnect: the pool's other connections were opened to
            # the same server and are as dead; start afresh (once per loss).
            _generations[engine.sync_engine] = generation + 1
            await engine.dispose()
    except Exception as exc:  # a dead connection failing to close is no news
        log.warning("could not give a connection back", error=f"{type(exc).__name__}: {exc}"[:300])


# How many times each engine's pool was started afresh after a lost connection.
_generations: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
