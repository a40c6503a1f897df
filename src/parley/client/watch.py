"""`parley client watch`: live events over the WebSocket, resumed by id after a disconnect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from parley.client.api import Api, ApiError
from parley.client.output import Printer, event_line

UNAUTHORIZED_CLOSE_CODE = 4401
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
HEALTHY_SECONDS = 10.0
AUTH_STATUSES = frozenset({401, 403})


class Directory:
    """User names for event lines, learned from chat member lists as events arrive."""

    def __init__(self, api: Api) -> None:
        self._api = api
        self._users: dict[Any, str] = {}
        self._loaded_chats: set[Any] = set()

    def name(self, chat_id: Any, user_id: Any) -> str:
        """The username of `user_id`, or `user <id>` while it is unknown."""
        del chat_id
        return self._users.get(user_id, f"user {user_id}")

    def _add_members(self, chat: Mapping[str, Any]) -> None:
        for member in chat.get("members") or []:
            if isinstance(member, dict) and "userId" in member:
                self._users[member["userId"]] = str(member.get("username"))

    async def learn(self, frame: Mapping[str, Any]) -> None:
        """Look up whatever names `frame` mentions that are not known yet."""
        data = frame.get("data")
        if not isinstance(data, dict):
            return
        if frame.get("type") in ("chat.created", "chat.updated"):
            self._add_members(data)
            return
        user_id = data.get("authorId", data.get("userId"))
        chat_id = data.get("chatId")
        if user_id is None or chat_id is None or user_id in self._users:
            return
        if chat_id in self._loaded_chats and frame.get("type") != "member.added":
            return
        self._loaded_chats.add(chat_id)
        with contextlib.suppress(ApiError):
            chat = await asyncio.to_thread(self._api.get, f"/chats/{chat_id}")
            if isinstance(chat, dict):
                self._add_members(chat)


def ws_url(server: str, last_event_id: str | None) -> str:
    """The WebSocket URL of `server`, resuming after `last_event_id` when given."""
    scheme, _, rest = server.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    url = f"{ws_scheme}://{rest}/api/v1/ws"
    if last_event_id:
        url += "?" + urlencode({"lastEventId": last_event_id})
    return url


class Watcher:
    """One `watch` session: connects, prints, and reconnects until told to stop."""

    def __init__(self, api: Api, printer: Printer, *, last_event_id: str | None = None) -> None:
        self.api = api
        self.printer = printer
        self.last_event_id = last_event_id
        self.directory = Directory(api)
        self.stop = asyncio.Event()
        self._frames = 0
        self._failure = ""

    async def run(self) -> int:
        """Watch until Ctrl-C/SIGTERM (0) or until the session cannot be renewed (1)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        delay = FIRST_DELAY
        refreshed_token: str | None = None
        while not self.stop.is_set():
            try:
                token = self.api.access_token()
            except ApiError as exc:
                self.printer.notice(str(exc))
                return 1
            reason = await self._session(token)
            if self.stop.is_set():
                break
            if reason == "connected":
                delay = FIRST_DELAY
                refreshed_token = None
                continue  # reconnect at once; _session already waited if it must
            if reason == "unauthorized":
                if refreshed_token == token:  # a fresh token was refused too: give up
                    self.printer.notice("401 the server refused the session")
                    return 1
                try:
                    refreshed_token = await asyncio.to_thread(self.api.refresh_tokens, token)
                except ApiError as exc:
                    if exc.status is not None:
                        self.printer.notice(str(exc))
                        return 1
                    self.printer.notice(f"{exc}; retrying")
                else:
                    continue
            wait = delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
            if reason == "failed":
                self.printer.notice(f"{self._failure}; retrying in {wait:.1f}s")
            await self._sleep(wait)
            delay = min(delay * 2, MAX_DELAY)
        return 0

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _session(self, token: str) -> str:
        """One connection: `connected` when it served a while (then closed), `unauthorized`,
        or `failed` when it could not open or was dropped at once."""
        url = ws_url(self.api.server, self.last_event_id)
        self._frames = 0
        self._failure = ""
        opened_at = asyncio.get_running_loop().time()
        try:
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
                close_timeout=3,
                max_size=2**22,
            ) as ws:
                resuming = f" (resuming after {self.last_event_id})" if self.last_event_id else ""
                self.printer.notice(f"connected{resuming}")
                close_code = await self._pump(ws)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in AUTH_STATUSES:
                return "unauthorized"
            self._failure = f"the WebSocket handshake got HTTP {status}"
            return "failed"
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self._failure = f"cannot connect to {self.api.server}: {exc or type(exc).__name__}"
            return "failed"
        if close_code == UNAUTHORIZED_CLOSE_CODE:
            return "unauthorized"
        if self.stop.is_set():
            return "connected"
        self.printer.notice(f"disconnected (code {close_code}); reconnecting")
        lasted = asyncio.get_running_loop().time() - opened_at
        if self._frames == 0 and lasted < HEALTHY_SECONDS:
            self._failure = "the server closed the connection at once"
            return "failed"  # a server that drops us at once gets the backoff
        await self._sleep(FIRST_DELAY * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
        return "connected"

    async def _pump(self, ws: ClientConnection) -> int | None:
        """Print frames until the socket closes or `stop` is set; the close code."""
        reader = asyncio.create_task(self._read(ws))
        stopper = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, stopper):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
        return ws.close_code

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            raw = await ws.recv()
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if isinstance(frame, dict):
                await self._handle(frame)

    async def _handle(self, frame: Mapping[str, Any]) -> None:
        self._frames += 1
        event_id = frame.get("id")
        if isinstance(event_id, str) and event_id:
            self.last_event_id = event_id
        if self.printer.as_json:
            if frame.get("type") != "pong":
                self.printer.data(frame)
            return
        await self.directory.learn(frame)
        line = event_line(frame, self.directory.name)
        if line is not None:
            self.printer.line(line)


def watch(api: Api, printer: Printer, *, last_event_id: str | None = None) -> int:
    """Run `watch` to completion; the exit code."""
    return asyncio.run(Watcher(api, printer, last_event_id=last_event_id).run())
