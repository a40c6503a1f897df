"""What live delivery may ask about browser sessions: which ones still live."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import structlog

from parley.auth.service import living_browser_sessions
from parley.db.engine import Database

log = structlog.get_logger("parley.auth")

# The sockets asked about wait for the answer (a handshake, or sockets held after a gap in
# live delivery): a database that hangs must not hold them longer than this.
ANSWER_WITHIN_SECONDS = 5.0


class BrowserSessions:
    """Answers the hub's questions about sockets opened with a session cookie."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def lives(self, user_id: int, session_id: int) -> bool:
        """Whether `user_id`'s browser session `session_id` still lives."""
        return (user_id, session_id) in await self.living([(user_id, session_id)])

    async def living(self, sessions: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        """Those of `sessions`, (user id, session id) pairs, that still live. When the
        database cannot answer (within `ANSWER_WITHIN_SECONDS`), all of them: the checks
        made before stand."""
        if not sessions:
            return set()
        try:
            async with asyncio.timeout(ANSWER_WITHIN_SECONDS), self._db.session() as session:
                return await living_browser_sessions(session, sessions)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("could not check the browser sessions of sockets", error=error)
            return set(sessions)
