"""The synchronous Api, awaitable from asyncio code (`watch` and the interactive `chat`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from parley.client.api import Api

T = TypeVar("T")


class AsyncApi:
    """Runs the calls of one `Api` on a single daemon thread, one after the other.

    One thread keeps the Api's session state (its tokens, its connection pool) free of
    races, and a daemon thread never holds up the exit of an interactive session that is
    left while a request is still waiting on a server that went away.
    """

    def __init__(self, api: Api) -> None:
        self.api = api
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="parley-api", daemon=True)
        self._thread.start()

    @property
    def server(self) -> str:
        """The server this Api talks to."""
        return self.api.server

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            call()

    def close(self) -> None:
        """Let the thread end after the calls already queued."""
        self._calls.put(None)

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)` on the Api's thread; its result or its exception."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._calls.put(call)
        return await asyncio.wrap_future(future)  # cancelling the await cancels a queued call

    async def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET an authenticated resource (see `Api.get`)."""
        return await self.run(self.api.get, path, params=params)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any authenticated request (see `Api.request`)."""
        return await self.run(self.api.request, method, path, **kwargs)

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """A request whose success status matters (see `Api.call`)."""
        return await self.run(self.api.call, method, path, **kwargs)

    async def access_token(self) -> str:
        """The current access token (see `Api.access_token`)."""
        return await self.run(self.api.access_token)

    async def refresh_tokens(self, rejected_access_token: str) -> str:
        """A fresh access token (see `Api.refresh_tokens`)."""
        return await self.run(self.api.refresh_tokens, rejected_access_token)
