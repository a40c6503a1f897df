"""What other domains may ask about chats: who is in a chat, who sees someone's presence."""

from __future__ import annotations

from sqlalchemy import func, select

from parley.chats.models import ChatMember
from parley.db.engine import Database


class ChatDirectory:
    """Membership lookups for live delivery (typing, presence), each in one query.

    Presence goes to the people one shares a direct chat or a small group with: in a group
    of more than `presence_group_limit` members nobody is told of each other's presence
    (like Rocket.Chat above 200 users), so opening the sockets of a large group costs
    O(members), not O(members²) presence frames.
    """

    def __init__(self, db: Database, *, presence_group_limit: int) -> None:
        self._db = db
        self._presence_group_limit = presence_group_limit

    async def members_of(self, chat_id: int) -> list[int]:
        """The ids of a chat's members (empty for a missing chat)."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ChatMember.user_id).where(ChatMember.chat_id == chat_id)
            )
            return list(rows)

    async def presence_audience(self, user_id: int) -> list[int]:
        """Everyone who shares a direct chat or a small group with `user_id`."""
        mine = select(ChatMember.chat_id).where(ChatMember.user_id == user_id)
        small = (
            select(ChatMember.chat_id)
            .where(ChatMember.chat_id.in_(mine))
            .group_by(ChatMember.chat_id)
            .having(func.count() <= self._presence_group_limit)
        )
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ChatMember.user_id)
                .where(ChatMember.chat_id.in_(small), ChatMember.user_id != user_id)
                .distinct()
            )
            return list(rows)
