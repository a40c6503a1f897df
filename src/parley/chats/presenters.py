"""Loading chats with their members, newest messages and unread counts, for answers and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from parley.auth.models import User
from parley.chats.models import Chat, ChatMember, Message
from parley.chats.schemas import ChatOut, ChatSummaryOut, MemberOut, MessageOut


@dataclass(frozen=True)
class MemberView:
    """A membership with its user."""

    member: ChatMember
    user: User


def member_out(view: MemberView) -> MemberOut:
    """The wire form of one member."""
    return MemberOut(
        user_id=view.user.id,
        username=view.user.username,
        display_name=view.user.display_name,
        role=view.member.role,
        joined_at=view.member.joined_at,
        last_read_message_id=view.member.last_read_message_id,
    )


def message_out(message: Message) -> MessageOut:
    """The wire form of a message."""
    return MessageOut.model_validate(message)


def chat_out(chat: Chat, members: Sequence[MemberView]) -> ChatOut:
    """The wire form of a chat with its members."""
    return ChatOut(
        id=chat.id,
        type=chat.type,
        title=chat.title,
        description=chat.description,
        creator_id=chat.creator_id,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
        members=[member_out(m) for m in members],
    )


async def load_members(
    session: AsyncSession, chat_ids: Sequence[int]
) -> dict[int, list[MemberView]]:
    """Members of each chat, in the order they joined."""
    out: dict[int, list[MemberView]] = {cid: [] for cid in chat_ids}
    if not chat_ids:
        return out
    rows = await session.execute(
        select(ChatMember, User)
        .join(User, User.id == ChatMember.user_id)
        .where(ChatMember.chat_id.in_(chat_ids))
        .order_by(ChatMember.chat_id, ChatMember.joined_at, ChatMember.user_id)
    )
    for member, user in rows.all():
        out[member.chat_id].append(MemberView(member, user))
    return out


async def member_ids(session: AsyncSession, chat_id: int) -> list[int]:
    """The ids of a chat's current members."""
    rows = await session.scalars(select(ChatMember.user_id).where(ChatMember.chat_id == chat_id))
    return list(rows)


async def load_chat_out(session: AsyncSession, chat: Chat) -> ChatOut:
    """A chat with its members, ready to send."""
    members = await load_members(session, [chat.id])
    return chat_out(chat, members[chat.id])


async def summaries(
    session: AsyncSession, chats: Sequence[Chat], user_id: int
) -> list[ChatSummaryOut]:
    """Chats with members, newest message and the caller's unread count, in two queries.

    The newest message and the unread count come from one statement, so from one snapshot:
    a message committed while the list is read is in both or in neither. (Read apart, a
    count could include a message newer than the one shown, and a client that then gets
    that message's event would count it twice.)
    """
    ids = [c.id for c in chats]
    members = await load_members(session, ids)
    latest = await _latest_and_unread(session, ids, user_id)
    result = []
    for chat in chats:
        base = chat_out(chat, members[chat.id])
        last, unread = latest.get(chat.id, (None, 0))
        result.append(
            ChatSummaryOut(
                **base.__dict__,
                last_message=message_out(last) if last else None,
                unread_count=unread,
            )
        )
    return result


async def _latest_and_unread(
    session: AsyncSession, chat_ids: Sequence[int], user_id: int
) -> dict[int, tuple[Message | None, int]]:
    """Per chat of the caller's: its newest message not deleted, and how many messages of
    others came after the caller's read marker."""
    if not chat_ids:
        return {}
    newer = aliased(Message)
    newest_id = (
        select(func.max(newer.id))
        .where(newer.chat_id == ChatMember.chat_id, newer.deleted_at.is_(None))
        .correlate(ChatMember)
        .scalar_subquery()
    )
    unread = (
        select(func.count())
        .select_from(newer)
        .where(
            newer.chat_id == ChatMember.chat_id,
            newer.deleted_at.is_(None),
            newer.author_id != user_id,
            newer.id > func.coalesce(ChatMember.last_read_message_id, 0),
        )
        .correlate(ChatMember)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(ChatMember.chat_id, Message, unread)
        .outerjoin(Message, Message.id == newest_id)
        .where(ChatMember.user_id == user_id, ChatMember.chat_id.in_(chat_ids))
    )
    return {int(chat_id): (last, int(count)) for chat_id, last, count in rows.all()}
