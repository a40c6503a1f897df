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
# How long the close frames may take before the shutdown goes on without them.
CLOSE_TIMEOUT_SECONDS = 2.0


@contextlib.contextmanager
def close_sockets_on_signal(hub: Hub) -> Iterator[None]:
    """While active, SIGTERM/SIGINT first close every socket with 1001, then do as before.

    The handler that was there before (uvicorn's, which starts the shutdown) runs only once
    the close frames are written, or after `CLOSE_TIMEOUT_SECONDS`: uvicorn's shutdown
    closes every socket with 1012 in the same step in which it notices the signal, so
    running both side by side was a race that 1012 sometimes won on a busy machine.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def _close_then_forward(signum: int, frame: FrameType | None) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await hub.close_all(GOING_AWAY, "server shutting down")
        except TimeoutError:  # a client that reads nothing must not hold the shutdown up
            pass
        finally:
            previous[signum](signum, frame)

    def _start(signum: int, frame: FrameType | None) -> None:
        task = loop.create_task(_close_then_forward(signum, frame))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _handler(signum: int, frame: FrameType | None) -> None:
        if callable(previous.get(signum)):
            # A signal handler may interrupt the loop anywhere: hand over thread-safely.
            loop.call_soon_threadsafe(_start, signum, frame)
        else:  # nobody else was handling it: behave as if we were not here
            signal.signal(signum, previous.get(signum) or signal.SIG_DFL)
            signal.raise_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
