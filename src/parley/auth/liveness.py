"""What live delivery may ask about browser sessions: whether one still lives."""

from __future__ import annotations

import structlog

from parley.auth.service import browser_session_lives
from parley.db.engine import Database

log = structlog.get_logger("parley.auth")


class BrowserSessions:
    """Answers the hub's question about a socket opened with a session cookie."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def lives(self, user_id: int, session_id: int) -> bool:
        """Whether `user_id`'s browser session `session_id` still lives, in one query. When
        the database cannot answer, True: the handshake's own check stands."""
        try:
            async with self._db.session() as session:
                return await browser_session_lives(session, user_id, session_id)
        except Exception as exc:
            log.warning("could not check a socket's browser session", error=str(exc)[:200])
            return True
