"""`parley demo`: a few people, a direct chat, two groups and a believable conversation.

The data goes in through the services, as if people had typed it, so every rule applies
and every event is in the outbox for a server to publish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select

from parley.auth import service as accounts
from parley.auth.models import User
from parley.chats import service as chats
from parley.db.engine import Database

PASSWORD = "parley-demo"  # noqa: S105 - the demo users' password, printed for the user


class NotEmpty(Exception):
    """The database already has users: the demo would mix with real data."""


class AlreadyThere(Exception):
    """The demo's own users exist already: it was added before."""


@dataclass(frozen=True)
class Person:
    """A demo user."""

    username: str
    display_name: str


PEOPLE = (
    Person("alice", "Alice Martin"),
    Person("bob", "Bob Okafor"),
    Person("carol", "Carol Nguyen"),
    Person("dave", "Dave Lindqvist"),
)

DIRECT = [
    ("bob", "Hi Alice, did you get the slides for Thursday?"),
    ("alice", "Yes, thanks! I'll add the numbers from the last quarter tonight."),
    ("bob", "Great. Lunch after the meeting?"),
    ("alice", "Sure, the new ramen place?"),
]

HIKE = [
    ("carol", "Weather looks good for Saturday ⛰️"),
    ("alice", "I'm in! Same trail as last spring?"),
    ("bob", "Can we start a bit later? 9 instead of 8?"),
    ("carol", "9 works. Meet at the north parking lot."),
    ("alice", "I'll bring coffee. Here's the route: https://example.com/trails/north-ridge"),
    ("bob", "Perfect, see you there!"),
]

BOOKS = [
    ("dave", "Next book: 'The Left Hand of Darkness'?"),
    ("carol", "Yes please, I've wanted to read it for ages."),
    ("alice", "Good pick. Three weeks enough?"),
    ("dave", "Three weeks it is. Same café on the 20th."),
    ("carol", "I'll book the big table."),
]


async def fill(db: Database, *, force: bool = False) -> list[Person]:
    """Create the demo users, chats and messages; NotEmpty if users exist (and not `force`)."""
    async with db.session() as session:
        existing = await session.scalar(select(func.count()).select_from(User))
    if existing and not force:
        raise NotEmpty(f"the database already has {existing} users")
    if existing:
        async with db.session() as session:
            taken = list(
                await session.scalars(
                    select(User.username).where(User.username.in_([p.username for p in PEOPLE]))
                )
            )
        if taken:
            raise AlreadyThere(f"the demo's users are there already ({', '.join(sorted(taken))})")
    ids: dict[str, int] = {}
    for person in PEOPLE:
        async with db.session() as session:
            user = await accounts.register(
                session,
                username=person.username,
                password=PASSWORD,
                display_name=person.display_name,
            )
            ids[person.username] = user.id
    await _chat(db, ids, "direct", None, ["alice", "bob"], DIRECT)
    await _chat(db, ids, "group", "Weekend hike", ["carol", "alice", "bob"], HIKE)
    await _chat(db, ids, "group", "Book club", ["dave", "carol", "alice"], BOOKS)
    return list(PEOPLE)


async def _chat(
    db: Database,
    ids: dict[str, int],
    kind: str,
    title: str | None,
    members: list[str],
    lines: list[tuple[str, str]],
) -> None:
    async with db.session() as session:
        chat, _ = await chats.create_chat(
            session,
            creator_id=ids[members[0]],
            chat_type=kind,
            title=title,
            description=None,
            member_ids=[ids[m] for m in members[1:]],
        )
    last_id = 0
    for author, text in lines:
        sent = await chats.send_message(
            db, chat_id=chat.id, author_id=ids[author], text=text, client_id=None
        )
        last_id = sent.id
    async with db.session() as session:  # the creator has read everything
        await chats.mark_read(session, chat_id=chat.id, user_id=ids[members[0]], message_id=last_id)


def run(database_url: str, *, force: bool = False) -> list[Person]:
    """`fill` on the database at `database_url`."""

    async def go() -> list[Person]:
        db = Database(database_url)
        try:
            return await fill(db, force=force)
        finally:
            await db.dispose()

    return asyncio.run(go())
