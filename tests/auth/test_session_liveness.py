"""Which browser sessions still live, asked for many sockets at once (after a pub/sub gap)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import delete, insert, select

from parley.auth.liveness import BrowserSessions
from parley.auth.models import BrowserSession
from parley.db.base import utcnow
from parley.db.engine import Database
from tests.fixtures.users import PASSWORD, register

# More than one statement's worth (the query asks about 500 sessions at a time).
SESSIONS = 1_203


async def test_living_answers_for_many_sessions_at_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    ann = (await register(client, "ann")).id
    ben = (await register(client, "ben")).id
    now = utcnow()
    rows = [
        {
            "user_id": ann if n % 2 else ben,
            "token_hash": f"token-{n}",
            "csrf_hash": f"csrf-{n}",
            # every seventh has expired
            "expires_at": now + (timedelta(minutes=-1) if n % 7 == 0 else timedelta(days=1)),
        }
        for n in range(SESSIONS)
    ]
    async with db.session() as session:
        await session.execute(insert(BrowserSession), rows)
        await session.commit()
        stored = {
            row.token_hash: (row.user_id, row.id)
            for row in (await session.execute(BrowserSession.__table__.select())).all()
        }
        signed_out = [stored[f"token-{n}"][1] for n in range(5, SESSIONS, 11)]
        await session.execute(delete(BrowserSession).where(BrowserSession.id.in_(signed_out)))
        await session.commit()
    pairs = set(stored.values())
    # A session asked about with another user's id is not theirs: it does not live for them.
    someone_elses = {(ben if user_id == ann else ann, session_id) for user_id, session_id in pairs}

    living = await BrowserSessions(db).living(pairs | someone_elses)

    expected = {
        stored[f"token-{n}"]
        for n in range(SESSIONS)
        if n % 7 != 0 and stored[f"token-{n}"][1] not in signed_out
    }
    assert living == expected
    assert 900 < len(expected) < SESSIONS


async def test_a_session_lives_until_it_is_signed_out(
    client: httpx.AsyncClient, db: Database
) -> None:
    cat = (await register(client, "cat")).id
    resp = await client.post("/api/v1/auth/login", data={"username": "cat", "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    async with db.session() as session:
        session_id = await session.scalar(
            select(BrowserSession.id).where(BrowserSession.user_id == cat)
        )
    assert session_id is not None
    sessions = BrowserSessions(db)
    assert await sessions.lives(cat, session_id)
    assert not await sessions.lives(cat + 1, session_id)  # not someone else's
    assert await sessions.living([]) == set()

    resp = await client.post(
        "/api/v1/auth/logout-session", headers={"X-CSRF-Token": resp.json()["csrfToken"]}
    )
    assert resp.status_code == 204, resp.text
    assert not await sessions.lives(cat, session_id)
