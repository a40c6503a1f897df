"""Telling a database that is not there from a statement that went wrong."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# SQLSTATE classes and codes that mean "the database is not there right now": connection
# exceptions, shutting down or starting up, too many connections.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_database_outage(exc: BaseException) -> bool:
    """True when a database error means the server is unreachable, not that we erred."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | asyncpg.exceptions.InterfaceError):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATES):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
