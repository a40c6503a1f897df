"""What the interactive session shows: the open chat, live events as lines, catching up.

Every line goes through `write`, which in the running session prints above the prompt.
Messages of the open chat are shown once each (by id), whichever way they arrive: the
answer to a send, a live event, a replay after a reconnect, or a refetch after a resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from parley.client.api import ApiError
from parley.client.async_api import AsyncApi
from parley.client.directory import Directory, list_all_chats
from parley.client.output import chat_name, chat_rows, clock, job_line, one_line
from parley.client.presence import PresenceFilter

HISTORY_SIZE = 20
CATCH_UP_SIZE = 100
# A `typing` line per person at most this often, and again after their next message.
TYPING_REPEAT_SECONDS = 15.0
FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

Write = Callable[[str], None]


class ChatError(Exception):
    """Something the person asked for cannot be done (no such chat, no chat open, ...)."""


def short_time(ts: Any) -> str:
    """`HH:MM` for today's timestamps, `YYYY-MM-DD HH:MM` for older ones."""
    if not isinstance(ts, str):
        return "?"
    try:
        moment = datetime.fromisoformat(ts).astimezone()
    except ValueError:
        return ts
    if moment.date() == datetime.now().astimezone().date():
        return moment.strftime("%H:%M")
    return clock(ts)


class ChatView:
    """The state of one interactive session, and the stream listener that feeds it."""

    def __init__(self, api: AsyncApi, me: Mapping[str, Any], write: Write) -> None:
        self.api = api
        self.me_id = me.get("id")
        self.me_name = str(me.get("username"))
        self.write = write
        self.directory = Directory(api)
        self.directory.add_user(self.me_id, self.me_name)
        self.presence = PresenceFilter(self._announce_presence)
        self.chats: dict[Any, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self._shown: dict[Any, str] = {}  # message id -> its text as last shown (open chat)
        self._previews_shown: set[tuple[Any, Any]] = set()
        self._deleted: set[Any] = set()  # ids whose deletion was shown
        self._typing_shown: dict[Any, float] = {}
        self._job_states: dict[Any, tuple[Any, Any]] = {}
        self._open_chat_lock = asyncio.Lock()  # history being printed holds live lines back
        self._tasks: set[asyncio.Task[None]] = set()
        self._ever_connected = False
        self._connection_lost = False

    # -- names -----------------------------------------------------------------------------

    @property
    def current_id(self) -> Any:
        """The id of the open chat (None when none is open)."""
        return self.current.get("id") if self.current else None

    def prompt(self) -> str:
        """The prompt: the open chat's name."""
        return f"{self.chat_label(self.current_id)}> " if self.current else "parley> "

    def chat_label(self, chat_id: Any) -> str:
        """A chat's title, or the other member of a direct chat; `chat <id>` if unknown."""
        chat = self.chats.get(chat_id)
        return one_line(chat_name(chat, self.me_name), 30) if chat else f"chat {chat_id}"

    def user(self, user_id: Any) -> str:
        """A user's name."""
        return self.directory.name(None, user_id)

    def message_text(self, message: Mapping[str, Any]) -> str:
        """A message of the open chat as one line: `#id time author: text`."""
        edited = " (edited)" if message.get("editedAt") else ""
        text = one_line(str(message.get("text", "")))
        author = self.user(message.get("authorId"))
        when = short_time(message.get("createdAt"))
        return f"#{message.get('id')} {when} {author}: {text}{edited}"

    # -- the stream listener -----------------------------------------------------------------

    def connected(self, resuming_after: str | None) -> None:
        """Say so when the connection is back."""
        del resuming_after
        if self._connection_lost:
            self.write("* reconnected")
        elif not self._ever_connected:
            self.write(f"* connected to {self.api.server}")
        self._ever_connected = True
        self._connection_lost = False

    def disconnected(self, reason: str, retry_in: float | None) -> None:
        """Say once per outage that the connection is gone (retries are not news)."""
        del retry_in
        if not self._connection_lost:
            self.write(f"* {reason}; reconnecting…")
        self._connection_lost = True

    def notice(self, text: str) -> None:
        """A message from the stream (why it gave up)."""
        self.write(f"! {text}")

    async def frame(self, frame: Mapping[str, Any]) -> None:
        """Show one live event."""
        kind = frame.get("type")
        data = frame.get("data")
        d: Mapping[str, Any] = data if isinstance(data, dict) else {}
        await self.directory.learn(frame)
        if kind in ("message.created", "message.updated"):
            await self._message_event(d, created=kind == "message.created")
        elif kind == "message.deleted":
            await self._message_deleted(d)
        elif kind == "typing":
            self._typing(d)
        elif kind == "presence":
            self.presence.offer(d.get("userId"), d.get("status"))
        elif kind in ("chat.created", "chat.updated"):
            self._chat_event(d, created=kind == "chat.created")
        elif kind in ("member.added", "member.removed"):
            self._member_event(d, added=kind == "member.added")
        elif kind == "job.updated":
            await self._job_event(d)
        elif kind == "error":
            self.write(f"! server: {one_line(str(frame.get('detail', 'error')))}")

    async def resynced(self) -> None:
        """Events were lost: read the chat list and the open chat's messages again."""
        self.write("* some events were missed while away; catching up")
        await self.directory.reload()
        chats = await self._quietly(self.refresh_chats())
        if self.current is not None:
            async with self._open_chat_lock:
                await self._quietly(self._show_history(CATCH_UP_SIZE, only_new=True))
        unread = [
            f"{self.chat_label(c.get('id'))} ({c.get('unreadCount')})"
            for c in chats or []
            if c.get("unreadCount") and c.get("id") != self.current_id
        ]
        if unread:
            self.write(f"* unread: {', '.join(unread)} — /join <chat>")

    # -- events ------------------------------------------------------------------------------

    async def _message_event(self, message: Mapping[str, Any], *, created: bool) -> None:
        chat_id = message.get("chatId")
        if chat_id != self.current_id:
            if created and message.get("authorId") != self.me_id:
                author = self.user(message.get("authorId"))
                text = one_line(str(message.get("text", "")), 100)
                self.write(f"[{self.chat_label(chat_id)}] #{message.get('id')} {author}: {text}")
            return
        async with self._open_chat_lock:
            if self.current_id != chat_id:
                return
            if created:
                if self._show(message) and message.get("authorId") != self.me_id:
                    self._typing_shown.pop(message.get("authorId"), None)
                    self._spawn(self._mark_read(chat_id, message.get("id")))
                return
            message_id = message.get("id")
            text = str(message.get("text", ""))
            if message_id in self._shown and self._shown[message_id] != text:
                self._shown[message_id] = text
                author = self.user(message.get("authorId"))
                self.write(f"#{message_id} edited by {author}: {one_line(text)}")
            elif message_id not in self._shown:
                self._show(message)
            self._show_previews(message)

    async def _message_deleted(self, data: Mapping[str, Any]) -> None:
        if data.get("chatId") != self.current_id:
            return
        async with self._open_chat_lock:
            if self._shown.pop(data.get("id"), None) is not None:
                self._deleted.add(data.get("id"))
                self.write(f"#{data.get('id')} deleted")

    async def edited(self, message: Mapping[str, Any]) -> None:
        """Show the answer to an edit (unless its event showed it already)."""
        if message.get("chatId") == self.current_id:
            await self._message_event(message, created=False)
        else:
            self.write(f"* edited #{message.get('id')} in {self.chat_label(message.get('chatId'))}")

    async def deleted(self, message_id: Any) -> None:
        """Show that a delete succeeded (unless its event showed it already)."""
        async with self._open_chat_lock:
            if message_id in self._deleted:
                return
            self._deleted.add(message_id)
            if self._shown.pop(message_id, None) is not None:
                self.write(f"#{message_id} deleted")
            else:
                self.write(f"* deleted #{message_id}")

    def member_added(self, chat: Mapping[str, Any], user_id: Any) -> None:
        """Show the answer to an add (unless its event showed it already)."""
        known = self.chats.get(chat.get("id"), {}).get("members") or []
        if any(m.get("userId") == user_id for m in known):
            return
        self._chat_members(chat)
        self.write(f"* [{self.chat_label(chat.get('id'))}] {self.user(user_id)} joined")

    def _chat_members(self, chat: Mapping[str, Any]) -> None:
        chat_id = chat.get("id")
        self.chats[chat_id] = {**self.chats.get(chat_id, {}), **chat}
        self.directory.add_chat(chat)
        if self.current is not None and self.current_id == chat_id:
            self.current.update(chat)

    def _typing(self, data: Mapping[str, Any]) -> None:
        user_id = data.get("userId")
        if data.get("chatId") != self.current_id or user_id == self.me_id:
            return
        now = time.monotonic()
        if now - self._typing_shown.get(user_id, float("-inf")) >= TYPING_REPEAT_SECONDS:
            self._typing_shown[user_id] = now
            self.write(f"* {self.user(user_id)} is typing…")

    def _announce_presence(self, user_id: Any, status: str) -> None:
        if user_id != self.me_id:
            self.write(f"* {self.user(user_id)} is {status}")

    def _chat_event(self, chat: Mapping[str, Any], *, created: bool) -> None:
        chat_id = chat.get("id")
        known = self.chats.get(chat_id, {})
        self.chats[chat_id] = {**known, **chat}
        if self.current_id == chat_id and self.current is not None:
            self.current.update(chat)
        name = self.chat_label(chat_id)
        if created:
            self.write(f"* new chat: {name} — /join {chat_id} to open it")
        else:
            self.write(f"* chat {name} changed")

    def _member_event(self, data: Mapping[str, Any], *, added: bool) -> None:
        chat_id, user_id = data.get("chatId"), data.get("userId")
        chat = self.chats.get(chat_id)
        member = data.get("member")
        if chat is not None:
            members = [m for m in chat.get("members") or [] if m.get("userId") != user_id]
            if added and len(members) < len(chat.get("members") or []):
                return  # already shown (the answer to our own /add came first)
            if added and isinstance(member, dict):
                members.append(member)
            chat["members"] = members
            if self.current is not None and self.current_id == chat_id:
                self.current["members"] = members
        verb = "joined" if added else "left"
        self.write(f"* [{self.chat_label(chat_id)}] {self.user(user_id)} {verb}")

    async def _job_event(self, job: Mapping[str, Any]) -> None:
        job_id = job.get("id")
        state = (job.get("status"), job.get("progress"))
        if self._job_states.get(job_id) == state:
            return
        self._job_states[job_id] = state
        self.write(f"* {job_line(job)}")
        if job.get("status") == "succeeded" and job.get("pageId") is not None:
            page = await self._quietly(self.api.get(f"/pages/{job['pageId']}"))
            if isinstance(page, dict):
                title = one_line(str(page.get("title") or "(no title)"), 100)
                description = page.get("description")
                about = f" — {one_line(str(description), 100)}" if description else ""
                self.write(f"* job {job_id}: {title}{about}")

    # -- showing messages --------------------------------------------------------------------

    def _show(self, message: Mapping[str, Any]) -> bool:
        """Print a message of the open chat unless it was shown already; whether it was."""
        message_id = message.get("id")
        if message_id in self._shown:
            return False
        self._shown[message_id] = str(message.get("text", ""))
        self.write(self.message_text(message))
        self._show_previews(message)
        return True

    def _show_previews(self, message: Mapping[str, Any]) -> None:
        for preview in message.get("previews") or []:
            if not isinstance(preview, dict) or preview.get("status") != "ready":
                continue
            key = (message.get("id"), preview.get("url"))
            if key in self._previews_shown:
                continue
            self._previews_shown.add(key)
            title = one_line(str(preview.get("title") or preview.get("url")), 80)
            self.write(f"   ↳ {title} ({preview.get('url')})")

    async def _show_history(self, limit: int, *, only_new: bool) -> None:
        """Print the newest `limit` messages of the open chat, oldest first, once each."""
        chat_id = self.current_id
        page = await self.api.get(f"/chats/{chat_id}/messages", params={"limit": limit})
        items = [m for m in page.get("items") or [] if isinstance(m, dict)]
        if not only_new and page.get("nextCursor"):
            self.write(f"* (showing the last {len(items)} messages)")
        for message in reversed(items):
            self._show(message)
        if not items and not only_new:
            self.write("* no messages yet: say something")
        if items:
            self._spawn(self._mark_read(chat_id, items[0].get("id")))

    async def _mark_read(self, chat_id: Any, message_id: Any) -> None:
        with contextlib.suppress(ApiError):
            await self.api.request("POST", f"/chats/{chat_id}/read", json={"messageId": message_id})

    # -- what the commands do ----------------------------------------------------------------

    async def refresh_chats(self) -> list[dict[str, Any]]:
        """Read the chat list (unread counts, names) again; the chats, latest first."""
        chats = await list_all_chats(self.api)
        self.directory.add_chats(chats)
        for chat in chats:
            self.chats[chat.get("id")] = chat
        return chats

    async def show_chats(self) -> None:
        """Print the chat list with unread counts."""
        chats = await self.refresh_chats()
        if not chats:
            self.write("* no chats yet: /join <username> starts a direct chat")
            return
        for row in chat_rows(chats, self.me_name):
            self.write(row)

    async def open(self, chat: Mapping[str, Any]) -> None:
        """Make `chat` the open chat and print its recent messages."""
        async with self._open_chat_lock:
            self.current = dict(chat)
            self.chats[chat.get("id")] = {**self.chats.get(chat.get("id"), {}), **chat}
            self.directory.add_chat(chat)
            self._shown.clear()
            self._typing_shown.clear()
            members = ", ".join(
                str(m.get("username")) for m in chat.get("members") or [] if isinstance(m, dict)
            )
            self.write(f"* {self.chat_label(chat.get('id'))} ({chat.get('type')}: {members})")
            await self._show_history(HISTORY_SIZE, only_new=False)

    async def find_chat(self, wanted: str) -> dict[str, Any]:
        """The chat `wanted` names: an id, a title, the other member of a direct chat, or a
        user to start a direct chat with."""
        key = wanted.strip().removeprefix("#").removeprefix("@").lower()
        if not key:
            raise ChatError("which chat? /join <chat id | name | username>")
        chats = await self.refresh_chats()
        for chat in chats:
            if str(chat.get("id")) == key:
                return chat
        named = [c for c in chats if chat_name(c, self.me_name).lower() == key]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            ids = ", ".join(str(c.get("id")) for c in named)
            raise ChatError(f"several chats are called {wanted!r}: use an id ({ids})")
        user = await self.find_user(key)
        _, chat = await self.api.call(
            "POST", "/chats", json={"type": "direct", "memberIds": [user["id"]]}
        )
        return dict(chat)

    async def find_user(self, username: str) -> dict[str, Any]:
        """The user with exactly this username (case-insensitive)."""
        wanted = username.strip().removeprefix("@").lower()
        page = await self.api.get("/users", params={"query": wanted, "limit": 100})
        for user in page.get("items") or []:
            if isinstance(user, dict) and str(user.get("username", "")).lower() == wanted:
                self.directory.add_user(user.get("id"), user.get("username"))
                return user
        raise ChatError(f"no chat or user named {username!r}")

    async def send(self, text: str) -> None:
        """Post a message to the open chat and show it (retries keep one clientId)."""
        if self.current is None:
            raise ChatError("no chat is open: /join <chat> first (/chats lists them)")
        chat_id = self.current_id
        _, message = await self.api.call(
            "POST",
            f"/chats/{chat_id}/messages",
            json={"text": text, "clientId": uuid.uuid4().hex},
            idempotent=True,
        )
        async with self._open_chat_lock:
            if self.current_id == chat_id:
                self._show(message)

    # -- housekeeping ------------------------------------------------------------------------

    async def _quietly(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run a REST call whose failure is only worth a line, not the session."""
        try:
            return await work
        except ApiError as exc:
            self.write(f"! {exc}")
            return None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Drop pending presence lines and background calls."""
        self.presence.close()
        for task in list(self._tasks):
            task.cancel()
