"""The chat rules, called in `parley.chats.service` directly on a real database.

The HTTP tests beside these check what a client sees; these check the rules themselves,
without routing, schemas or tokens in between, so a rule that moves keeps its test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from parley.chats import presenters, service
from parley.chats.models import Chat
from parley.chats.schemas import ChatOut
from parley.common.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from parley.db.engine import Database
from tests.fixtures.users import db_user, db_users


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    async with db.session() as s:
        yield s


async def group(session: AsyncSession, owner: int, *members: int) -> int:
    chat, created = await service.create_chat(
        session,
        creator_id=owner,
        chat_type="group",
        title="room",
        description=None,
        member_ids=list(members),
    )
    assert created
    return chat.id


async def direct(session: AsyncSession, me: int, *others: int) -> tuple[ChatOut, bool]:
    return await service.create_chat(
        session,
        creator_id=me,
        chat_type="direct",
        title=None,
        description=None,
        member_ids=list(others),
    )


async def send(
    db: Database, chat_id: int, author_id: int, text: str, client_id: str | None = None
) -> service.Sent:
    return await service.send_message(
        db, chat_id=chat_id, author_id=author_id, text=text, client_id=client_id
    )


async def roles(session: AsyncSession, chat_id: int) -> dict[int, str]:
    chat = await session.get(Chat, chat_id)
    assert chat is not None
    out = await presenters.load_chat_out(session, chat)
    return {m.user_id: m.role for m in out.members}


async def unread(db: Database, user_id: int, chat_id: int) -> int:
    async with db.session() as s:
        chat = await s.get(Chat, chat_id)
        assert chat is not None
        (summary,) = await presenters.summaries(s, [chat], user_id)
        return summary.unread_count


# Membership


async def test_only_members_see_a_chat(db: Database, session: AsyncSession) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat_id = await group(session, alice, bob)
    assert (await service.get_chat(session, chat_id, bob)).id == chat_id
    with pytest.raises(NotFound):
        await service.get_chat(session, chat_id, carol)
    with pytest.raises(NotFound):
        await service.list_messages(
            session, chat_id=chat_id, user_id=carol, before_id=None, limit=10
        )


async def test_a_chat_names_only_existing_users(db: Database, session: AsyncSession) -> None:
    alice = await db_user(db, "alice")
    with pytest.raises(Invalid):
        await group(session, alice, 999_999)


async def test_the_creator_owns_and_the_others_are_members(
    db: Database, session: AsyncSession
) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    chat_id = await group(session, alice, bob)
    assert await roles(session, chat_id) == {alice: "owner", bob: "member"}


async def test_any_member_adds_but_only_once(db: Database, session: AsyncSession) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat_id = await group(session, alice, bob)
    out = await service.add_member(session, chat_id=chat_id, user_id=bob, new_user_id=carol)
    assert {m.user_id for m in out.members} == {alice, bob, carol}
    with pytest.raises(Conflict):
        await service.add_member(session, chat_id=chat_id, user_id=alice, new_user_id=carol)


async def test_a_non_member_cannot_add(db: Database, session: AsyncSession) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat_id = await group(session, alice)
    with pytest.raises(NotFound):
        await service.add_member(session, chat_id=chat_id, user_id=carol, new_user_id=bob)


# Direct chats


async def test_a_pair_has_one_direct_chat(db: Database, session: AsyncSession) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    first, created = await direct(session, alice, bob)
    again, created_again = await direct(session, bob, alice)
    assert (created, created_again) == (True, False)
    assert again.id == first.id


async def test_a_direct_chat_has_exactly_one_other_member(
    db: Database, session: AsyncSession
) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    for members in ([], [alice], [bob, carol]):
        with pytest.raises(Invalid):
            await direct(session, alice, *members)


async def test_a_direct_chats_members_never_change(db: Database, session: AsyncSession) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat, _ = await direct(session, alice, bob)
    with pytest.raises(BadRequest):
        await service.add_member(session, chat_id=chat.id, user_id=alice, new_user_id=carol)
    with pytest.raises(BadRequest):
        await service.remove_member(session, chat_id=chat.id, user_id=alice, target_id=alice)


# Owner and member permissions


async def test_only_the_owner_edits_the_chat(db: Database, session: AsyncSession) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    chat_id = await group(session, alice, bob)
    with pytest.raises(Forbidden):
        await service.update_chat(session, chat_id=chat_id, user_id=bob, changes={"title": "x"})
    out = await service.update_chat(
        session, chat_id=chat_id, user_id=alice, changes={"title": "renamed"}
    )
    assert out.title == "renamed"


async def test_only_the_owner_removes_others_but_anyone_leaves(
    db: Database, session: AsyncSession
) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat_id = await group(session, alice, bob, carol)
    with pytest.raises(Forbidden):
        await service.remove_member(session, chat_id=chat_id, user_id=bob, target_id=carol)
    await service.remove_member(session, chat_id=chat_id, user_id=bob, target_id=bob)
    await service.remove_member(session, chat_id=chat_id, user_id=alice, target_id=carol)
    assert await roles(session, chat_id) == {alice: "owner"}


async def test_when_the_owner_leaves_the_longest_member_owns(
    db: Database, session: AsyncSession
) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat_id = await group(session, alice, bob)
    await service.add_member(session, chat_id=chat_id, user_id=alice, new_user_id=carol)
    await service.remove_member(session, chat_id=chat_id, user_id=alice, target_id=alice)
    assert await roles(session, chat_id) == {bob: "owner", carol: "member"}


# Messages: edit and delete


async def test_only_the_author_edits_a_message(db: Database, session: AsyncSession) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    chat_id = await group(session, alice, bob)
    sent = await send(db, chat_id, alice, "hello")
    with pytest.raises(Forbidden):
        await service.edit_message(session, message_id=sent.id, user_id=bob, text="hacked")
    out = await service.edit_message(session, message_id=sent.id, user_id=alice, text="hello!")
    assert (out.text, out.edited_at is not None) == ("hello!", True)


async def test_the_author_or_the_owner_deletes_a_message(
    db: Database, session: AsyncSession
) -> None:
    alice, bob, carol = await db_users(db, "alice", "bob", "carol")
    chat_id = await group(session, alice, bob, carol)
    by_bob = await send(db, chat_id, bob, "one")
    by_carol = await send(db, chat_id, carol, "two")
    with pytest.raises(Forbidden):
        await service.delete_message(session, message_id=by_carol.id, user_id=bob)
    await service.delete_message(session, message_id=by_bob.id, user_id=bob)
    await service.delete_message(session, message_id=by_carol.id, user_id=alice)
    listed = await service.list_messages(
        session, chat_id=chat_id, user_id=alice, before_id=None, limit=10
    )
    assert listed == []
    with pytest.raises(NotFound):
        await service.edit_message(session, message_id=by_bob.id, user_id=bob, text="back")


async def test_a_non_member_cannot_see_a_message_to_edit(
    db: Database, session: AsyncSession
) -> None:
    alice, carol = await db_users(db, "alice", "carol")
    chat_id = await group(session, alice)
    sent = await send(db, chat_id, alice, "mine")
    with pytest.raises(NotFound):
        await service.delete_message(session, message_id=sent.id, user_id=carol)


# Sending


async def test_a_send_answers_the_message_as_json(db: Database) -> None:
    alice = await db_user(db, "alice")
    async with db.session() as s:
        chat_id = await group(s, alice)
    sent = await send(db, chat_id, alice, "hi", "c-1")
    body = json.loads(sent.json)
    assert sent.created
    assert (body["id"], body["chatId"], body["authorId"]) == (sent.id, chat_id, alice)
    assert (body["text"], body["clientId"]) == ("hi", "c-1")


async def test_a_repeated_client_id_answers_the_first_message(db: Database) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    async with db.session() as s:
        chat_id = await group(s, alice, bob)
    first = await send(db, chat_id, alice, "once", "same")
    again = await send(db, chat_id, alice, "twice", "same")
    assert (again.id, again.created, json.loads(again.json)["text"]) == (first.id, False, "once")
    # The id is the author's own in the chat: another author may use it too.
    other = await send(db, chat_id, bob, "mine", "same")
    assert (other.created, other.id == first.id) == (True, False)
    async with db.session() as s:
        listed = await service.list_messages(
            s, chat_id=chat_id, user_id=alice, before_id=None, limit=10
        )
    assert [m.text for m in listed] == ["mine", "once"]


async def test_a_non_member_cannot_send(db: Database) -> None:
    alice, carol = await db_users(db, "alice", "carol")
    async with db.session() as s:
        chat_id = await group(s, alice)
    with pytest.raises(NotFound):
        await send(db, chat_id, carol, "let me in")
    with pytest.raises(NotFound):
        await send(db, chat_id, carol, "let me in", "k")


# Read markers and unread counts


async def test_read_markers_never_move_backwards(db: Database) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    async with db.session() as s:
        chat_id = await group(s, alice, bob)
    ids = [(await send(db, chat_id, alice, f"m{i}")).id for i in range(3)]
    for message_id in (ids[2], ids[0]):
        async with db.session() as s:
            await service.mark_read(s, chat_id=chat_id, user_id=bob, message_id=message_id)
    async with db.session() as s:
        member = await service.membership(s, chat_id, bob)
    assert member.last_read_message_id == ids[2]


async def test_a_read_marker_names_a_message_of_its_chat(db: Database) -> None:
    alice = await db_user(db, "alice")
    async with db.session() as s:
        chat_id, other_id = await group(s, alice), await group(s, alice)
    elsewhere = await send(db, other_id, alice, "elsewhere")
    async with db.session() as s:
        with pytest.raises(Invalid):
            await service.mark_read(s, chat_id=chat_id, user_id=alice, message_id=elsewhere.id)


async def test_unread_counts_others_messages_after_the_marker(db: Database) -> None:
    alice, bob = await db_users(db, "alice", "bob")
    async with db.session() as s:
        chat_id = await group(s, alice, bob)
    ids = [(await send(db, chat_id, alice, f"m{i}")).id for i in range(3)]
    await send(db, chat_id, bob, "my own do not count")
    assert await unread(db, bob, chat_id) == 3
    assert await unread(db, alice, chat_id) == 1
    async with db.session() as s:
        await service.mark_read(s, chat_id=chat_id, user_id=bob, message_id=ids[0])
    assert await unread(db, bob, chat_id) == 2
    async with db.session() as s:
        await service.delete_message(s, message_id=ids[2], user_id=alice)
    assert await unread(db, bob, chat_id) == 1  # a deleted message is not waiting to be read
