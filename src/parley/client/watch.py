"""`parley client watch`: live events, one line each, resumed by id after a disconnect."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from typing import Any

from parley.client.api import Api
from parley.client.async_api import AsyncApi
from parley.client.directory import Directory
from parley.client.output import Printer, event_line, time_of_day
from parley.client.presence import PresenceFilter
from parley.client.stream import EventStream


class WatchPrinter:
    """Prints what the stream delivers: JSON frames verbatim, or one human line each.

    Human lines name users, end with the event id (what `--since` takes), and leave out
    presence flaps of people whose connection came back within a few seconds.
    """

    def __init__(self, api: AsyncApi, printer: Printer) -> None:
        self.printer = printer
        self.directory = Directory(api)
        self.presence = PresenceFilter(self._announce_presence)

    async def frame(self, frame: Mapping[str, Any]) -> None:
        """Print one frame."""
        kind = frame.get("type")
        if self.printer.as_json:
            if kind != "pong":
                self.printer.data(frame)
            return
        if kind == "ready":
            data = frame.get("data")
            position = data.get("lastEventId") if isinstance(data, dict) else None
            self.printer.notice(f"live after event {position}")
            return
        await self.directory.learn(frame)
        data = frame.get("data")
        if kind == "presence" and isinstance(data, dict):
            self.presence.offer(data.get("userId"), data.get("status"))
            return
        line = event_line(frame, self.directory.name)
        if line is not None:
            self.printer.line(line)

    def _announce_presence(self, user_id: Any, status: str) -> None:
        self.printer.line(f"{time_of_day(None)} {self.directory.name(None, user_id)} is {status}")

    async def resynced(self) -> None:
        """Nothing to refetch: the `resync required` line told the reader already."""

    def connected(self, resuming_after: str | None) -> None:
        """Say that the socket is open."""
        resuming = f" (resuming after {resuming_after})" if resuming_after else ""
        self.printer.notice(f"connected{resuming}")

    def disconnected(self, reason: str, retry_in: float | None) -> None:
        """Say that the socket is gone and when the next attempt is."""
        when = f"retrying in {retry_in:.1f}s" if retry_in is not None else "retrying"
        self.printer.notice(f"{reason}; {when}")

    def notice(self, text: str) -> None:
        """Pass a message on to stderr."""
        self.printer.notice(text)


async def _watch(api: Api, printer: Printer, last_event_id: str | None) -> int:
    async_api = AsyncApi(api)
    listener = WatchPrinter(async_api, printer)
    stream = EventStream(async_api, listener, last_event_id=last_event_id)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stream.stop)
    try:
        return await stream.run()
    finally:
        listener.presence.close()
        async_api.close()


def watch(api: Api, printer: Printer, *, last_event_id: str | None = None) -> int:
    """Run `watch` until Ctrl-C/SIGTERM (0) or until the session cannot be renewed (1)."""
    return asyncio.run(_watch(api, printer, last_event_id))
