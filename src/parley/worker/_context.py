"""What a task's async code works with, and where that code runs.

Celery 5 tasks are synchronous. A task hands its coroutine to a `TaskRunner`:

- `AppLoopRunner` (embedded mode): the worker lives inside `parley serve`, so the coroutine
  runs on the app's own event loop with the app's database and bus. Events published by a
  job reach the WebSocket clients of that very process.
- `ProcessLoopRunner` (`parley worker`): one event loop thread per worker process, started
  lazily and started again after a fork, with its own database engine, bus and outbox
  publisher (events and enqueues that jobs commit are published from the worker).
"""

from __future__ import annotations

import asyncio
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from parley.db.engine import Database
from parley.db.instance import instance_id
from parley.outbox.publication import JobSender
from parley.outbox.runtime import Outbox
from parley.realtime.bus import Bus
from parley.realtime.factory import create_bus
from parley.settings import Settings
from parley.worker._limits import JobLimits

T = TypeVar("T")

# A worker process runs one task at a time per pool slot: a small pool is plenty.
WORKER_POOL_SIZE = 2
WORKER_MAX_OVERFLOW = 4


@dataclass(frozen=True)
class JobContext:
    """The settings, limits and database that job code runs with."""

    settings: Settings
    limits: JobLimits
    db: Database


Work = Callable[[JobContext], Awaitable[T]]


class TaskRunner(ABC):
    """Runs a task's async work to completion from the (synchronous) Celery task."""

    @abstractmethod
    def run(self, work: Work[T]) -> T:
        """Await `work(context)` and return its result; blocks the calling thread."""

    def close(self) -> None:
        """Release what the runner opened."""


def _wait(future: Future[T]) -> T:
    try:
        return future.result()
    except BaseException:
        # Interrupted (Celery's soft time limit, shutdown): stop the coroutine too.
        future.cancel()
        raise


async def _apply(work: Work[T], context: JobContext) -> T:
    return await work(context)


class AppLoopRunner(TaskRunner):
    """Runs work on the event loop of the app that embeds the worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, context: JobContext) -> None:
        self._loop = loop
        self._context = context

    def run(self, work: Work[T]) -> T:
        """Schedule `work` on the app's loop and wait for it in this (pool) thread."""
        return _wait(asyncio.run_coroutine_threadsafe(_apply(work, self._context), self._loop))


class ProcessLoopRunner(TaskRunner):
    """One event loop thread, database engine and bus per worker process."""

    def __init__(self, settings: Settings, send_job: JobSender | None) -> None:
        self._settings = settings
        self._send_job = send_job
        self._outbox: Outbox | None = None
        self._bus: Bus | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._context: JobContext | None = None

    def run(self, work: Work[T]) -> T:
        """Run `work` on this process's loop, starting the loop first if needed."""
        loop, context = self._ensure_started()
        return _wait(asyncio.run_coroutine_threadsafe(_apply(work, context), loop))

    def _ensure_started(self) -> tuple[asyncio.AbstractEventLoop, JobContext]:
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                # Nothing of a parent's loop survives a fork: start afresh in this process.
                loop = new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="parley-jobs-loop", daemon=True
                )
                thread.start()
                opening = asyncio.run_coroutine_threadsafe(self._open(), loop)
                self._context = opening.result()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            assert self._loop is not None
            assert self._context is not None
            return self._loop, self._context

    async def _open(self) -> JobContext:
        db = Database(
            self._settings.database_url,
            pool_size=WORKER_POOL_SIZE,
            max_overflow=WORKER_MAX_OVERFLOW,
        )
        self._bus = bus = create_bus(self._settings, await instance_id(db))
        await bus.start(live=False)  # jobs publish events; sockets are the servers'
        self._outbox = Outbox.start(self._settings, db, bus, self._send_job, with_relay=False)
        return JobContext(self._settings, JobLimits.from_settings(self._settings), db)

    def close(self) -> None:
        """Close the bus and the engine of this process, then stop its loop."""
        with self._lock:
            loop, context, thread = self._loop, self._context, self._thread
            if self._pid != os.getpid() or loop is None or context is None or thread is None:
                return
            self._loop = self._context = self._thread = None
            self._pid = None
        outbox, bus = self._outbox, self._bus
        self._outbox = self._bus = None
        asyncio.run_coroutine_threadsafe(_close(context, outbox, bus), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (as with uvicorn's standard extras, on
    Linux and macOS), asyncio's otherwise: the server runs on uvloop too."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _close(context: JobContext, outbox: Outbox | None, bus: Bus | None) -> None:
    if outbox is not None:
        await outbox.close()
    if bus is not None:
        await bus.close()
    await context.db.dispose()
