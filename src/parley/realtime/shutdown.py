"""Close sockets with 1001 ("going away") as soon as the server is told to stop.

uvicorn would otherwise close them with 1012 only after it stopped accepting; 1001 tells
clients to reconnect (to another process behind the proxy) and resume by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from parley.realtime.hub import Hub

GOING_AWAY = 1001


@contextlib.contextmanager
def close_sockets_on_signal(hub: Hub) -> Iterator[None]:
    """While active, SIGTERM/SIGINT first close every socket with 1001, then do as before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    def _close_all() -> None:
        task = loop.create_task(hub.close_all(GOING_AWAY, "server shutting down"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(_close_all)
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        else:  # nobody else was handling it: behave as if we were not here
            signal.signal(signum, before or signal.SIG_DFL)
            signal.raise_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
