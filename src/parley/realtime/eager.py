"""Start a coroutine at once, in the caller, and give it a task only if it has to wait.

A socket write through ASGI is a coroutine that almost never waits (only when the client
stops reading and the transport's buffer is full). Fanning one event out to a thousand
sockets through a task each costs a task wake-up per socket; running the write in the
caller costs nothing extra. This is what Python 3.12's `asyncio.eager_task_factory` does
for a whole loop; here it is for the writes that ask for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


def start_now(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` until it finishes or first waits.

    Returns None when it finished (an exception it raised is raised here), or a task that
    finishes it when it had to wait.
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coro, waiting_on))


async def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _Resumed(coro, waiting_on)


class _Resumed:
    """An awaitable that continues a coroutine already started: `yield from` for a
    coroutine whose first step has been taken, handing what it waits on to the task."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation, or the awaited future's error
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration:
                    return
