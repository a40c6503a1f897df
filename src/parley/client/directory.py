"""User names for event lines, learned from the member lists of the caller's chats.

The API has no lookup of a user by id; everyone an event can name shares a chat with the
caller, so their names are in the member lists of the caller's chats.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from parley.client.api import ApiError
from parley.client.async_api import AsyncApi

CHAT_PAGE_SIZE = 100
MAX_CHAT_PAGES = 10
# An unknown user in an event without a chat (presence) reloads the chat list, at most
# this often: a burst of strangers costs one reload.
RELOAD_INTERVAL_SECONDS = 5.0


async def list_all_chats(api: AsyncApi) -> list[dict[str, Any]]:
    """The caller's chats, latest activity first (up to a thousand)."""
    chats: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": CHAT_PAGE_SIZE}
    for _ in range(MAX_CHAT_PAGES):
        page = await api.get("/chats", params=params)
        chats.extend(item for item in page.get("items") or [] if isinstance(item, dict))
        cursor = page.get("nextCursor")
        if not cursor:
            break
        params = {"limit": CHAT_PAGE_SIZE, "cursor": cursor}
    return chats


class Directory:
    """Knows the usernames of the people in the caller's chats."""

    def __init__(self, api: AsyncApi) -> None:
        self._api = api
        self._users: dict[Any, str] = {}
        self._loaded_chats: dict[Any, float] = {}  # chat id -> when its members were read
        self._last_reload = float("-inf")

    def name(self, chat_id: Any, user_id: Any) -> str:
        """The username of `user_id`, or `user <id>` while it is unknown."""
        del chat_id
        return self._users.get(user_id, f"user {user_id}")

    def knows(self, user_id: Any) -> bool:
        """Whether the name of `user_id` is known."""
        return user_id in self._users

    def add_user(self, user_id: Any, username: Any) -> None:
        """Remember one name."""
        if user_id is not None and isinstance(username, str) and username:
            self._users[user_id] = username

    def add_chat(self, chat: Mapping[str, Any]) -> None:
        """Remember the names of a chat's members."""
        for member in chat.get("members") or []:
            if isinstance(member, dict):
                self.add_user(member.get("userId"), member.get("username"))
        if "id" in chat:
            self._loaded_chats[chat["id"]] = time.monotonic()

    def add_chats(self, chats: Iterable[Mapping[str, Any]]) -> None:
        """Remember the members of every chat in `chats`."""
        for chat in chats:
            self.add_chat(chat)

    async def reload(self) -> None:
        """Read every chat's members again (errors leave what is known)."""
        self._last_reload = time.monotonic()
        with contextlib.suppress(ApiError):
            self.add_chats(await list_all_chats(self._api))

    async def learn(self, frame: Mapping[str, Any]) -> None:
        """Look up whatever names `frame` mentions that are not known yet."""
        data = frame.get("data")
        if not isinstance(data, dict):
            return
        kind = frame.get("type")
        if kind in ("chat.created", "chat.updated"):
            self.add_chat(data)
            return
        member = data.get("member")
        if kind == "member.added" and isinstance(member, dict):
            self.add_user(member.get("userId"), member.get("username"))
        user_id = data.get("authorId", data.get("userId"))
        if user_id is None or user_id in self._users:
            return
        chat_id = data.get("chatId")
        if chat_id is None:
            if time.monotonic() - self._last_reload >= RELOAD_INTERVAL_SECONDS:
                await self.reload()
            return
        loaded_at = self._loaded_chats.get(chat_id, float("-inf"))
        if time.monotonic() - loaded_at < RELOAD_INTERVAL_SECONDS and kind != "member.added":
            return
        self._loaded_chats[chat_id] = time.monotonic()
        with contextlib.suppress(ApiError):
            chat = await self._api.get(f"/chats/{chat_id}")
            if isinstance(chat, dict):
                self.add_chat(chat)
