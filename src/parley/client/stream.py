"""The live event stream: one WebSocket, resumed by event id after every disconnect.

What the contract promises and this module keeps: every socket starts with a `ready` frame
that carries a position; reconnecting with the id of the last event seen (or `ready`'s, if
none was seen since) replays whatever was missed, or announces with `resync.required` that
it cannot, after which the client refetches by REST and carries on from the next `ready`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from parley.client.api import ApiError
from parley.client.async_api import AsyncApi

UNAUTHORIZED_CLOSE_CODE = 4401
FIRST_DELAY = 0.5
MAX_DELAY = 10.0  # a person is waiting: retry at least this often
HEALTHY_SECONDS = 10.0
AUTH_STATUSES = frozenset({401, 403})


class Listener(Protocol):
    """What a user of the stream is told."""

    async def frame(self, frame: Mapping[str, Any]) -> None:
        """Every frame from the server (events, `ready`, `resync.required`, ...), in order."""

    async def resynced(self) -> None:
        """Events were lost: refetch by REST now (the new `ready` has just arrived)."""

    def connected(self, resuming_after: str | None) -> None:
        """A socket opened (resuming after this event id, if any)."""

    def disconnected(self, reason: str, retry_in: float | None) -> None:
        """The socket closed or could not open; another attempt follows (in `retry_in` s)."""

    def notice(self, text: str) -> None:
        """Something a person should read (why the stream gave up)."""


def ws_url(server: str, last_event_id: str | None) -> str:
    """The WebSocket URL of `server`, resuming after `last_event_id` when given."""
    scheme, _, rest = server.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    url = f"{ws_scheme}://{rest}/api/v1/ws"
    if last_event_id:
        url += "?" + urlencode({"lastEventId": last_event_id})
    return url


class EventStream:
    """Connects, hands every frame to the listener, and reconnects until `stop`."""

    def __init__(
        self, api: AsyncApi, listener: Listener, *, last_event_id: str | None = None
    ) -> None:
        self.api = api
        self.listener = listener
        self.last_event_id = last_event_id
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._resync_pending = False
        self._frames = 0
        self._failure = ""

    def stop(self) -> None:
        """End `run` (it closes the socket and returns 0)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()

    async def send(self, message: Mapping[str, Any]) -> bool:
        """Send a frame to the server if a socket is open; whether it was sent."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(message, separators=(",", ":")))
        except ConnectionClosed:
            return False
        return True

    async def run(self) -> int:
        """Stream until `stop` (0) or until the session cannot be renewed (1)."""
        delay = FIRST_DELAY
        refreshed_token: str | None = None
        while not self._stop.is_set():
            try:
                token = await self.api.access_token()
            except ApiError as exc:
                self.listener.notice(str(exc))
                return 1
            reason = await self._session(token)
            if self._stop.is_set():
                break
            if reason == "connected":
                delay = FIRST_DELAY
                refreshed_token = None
                continue  # reconnect at once; _session already waited if it must
            if reason == "unauthorized":
                if refreshed_token == token:  # a fresh token was refused too: give up
                    self.listener.notice("401 the server refused the session")
                    return 1
                try:
                    refreshed_token = await self.api.refresh_tokens(token)
                except ApiError as exc:
                    if exc.status is not None:
                        self.listener.notice(str(exc))
                        return 1
                    self._failure = str(exc)
                    reason = "failed"
                else:
                    continue
            wait = delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
            if reason == "failed":
                self.listener.disconnected(self._failure, wait)
            await self._sleep(wait)
            delay = min(delay * 2, MAX_DELAY)
        return 0

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

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
                self.listener.connected(self.last_event_id)
                self._ws = ws
                try:
                    close_code = await self._pump(ws)
                finally:
                    self._ws = None
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
        if self._stop.is_set():
            return "connected"
        lasted = asyncio.get_running_loop().time() - opened_at
        if self._frames == 0 and lasted < HEALTHY_SECONDS:
            self._failure = f"the server closed the connection at once (code {close_code})"
            return "failed"  # a server that drops us at once gets the backoff
        wait = FIRST_DELAY * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        self.listener.disconnected(f"disconnected (code {close_code})", wait)
        await self._sleep(wait)
        return "connected"

    async def _pump(self, ws: ClientConnection) -> int | None:
        """Handle frames until the socket closes or `stop` is set; the close code."""
        reader = asyncio.create_task(self._read(ws))
        stopper = asyncio.create_task(self._stop.wait())
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
        kind = frame.get("type")
        if kind == "resync.required":
            self._resync_pending = True
        elif kind == "ready":
            data = frame.get("data")
            position = data.get("lastEventId") if isinstance(data, dict) else None
            if isinstance(position, str) and position:
                self.last_event_id = position
        else:
            event_id = frame.get("id")
            if isinstance(event_id, str) and event_id:
                self.last_event_id = event_id
        await self.listener.frame(frame)
        if kind == "ready":
            self.ready.set()
            if self._resync_pending:
                self._resync_pending = False
                await self.listener.resynced()
