"""Loading chats with their members, newest messages and unread counts, for answers and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
    """Chats with members, newest message and the caller's unread count, in three queries."""
    ids = [c.id for c in chats]
    members = await load_members(session, ids)
    last_ids = (
        select(func.max(Message.id))
        .where(Message.chat_id.in_(ids), Message.deleted_at.is_(None))
        .group_by(Message.chat_id)
    )
    last_messages = {
        m.chat_id: m for m in await session.scalars(select(Message).where(Message.id.in_(last_ids)))
    }
    unread_rows = await session.execute(
        select(Message.chat_id, func.count())
        .join(
            ChatMember,
            (ChatMember.chat_id == Message.chat_id) & (ChatMember.user_id == user_id),
        )
        .where(
            Message.chat_id.in_(ids),
            Message.deleted_at.is_(None),
            Message.author_id != user_id,
            Message.id > func.coalesce(ChatMember.last_read_message_id, 0),
        )
        .group_by(Message.chat_id)
    )
    unread = {int(chat_id): int(count) for chat_id, count in unread_rows.all()}
    result = []
    for chat in chats:
        base = chat_out(chat, members[chat.id])
        last = last_messages.get(chat.id)
        result.append(
            ChatSummaryOut(
                **base.__dict__,
                last_message=message_out(last) if last else None,
                unread_count=unread.get(chat.id, 0),
            )
        )
    return result
