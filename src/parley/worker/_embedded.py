"""The worker that runs inside `parley serve` when jobs go through the in-memory broker."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from celery.concurrency.thread import TaskPool
from celery.worker import WorkController

from parley.worker._factory import ParleyCelery

log = structlog.get_logger("parley.jobs.embedded")

STOP_TIMEOUT_SECONDS = 30.0
_numbers = itertools.count(1)


class AppThreadPool(TaskPool):
    """Celery's thread pool, with the worker's app current in each of its threads.

    Celery finds a task by name in the *current* app of the thread that runs it; without
    this, pool threads would use a default app, not the one that embeds the worker.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.executor = ThreadPoolExecutor(max_workers=self.limit, initializer=self.app.set_current)


class EmbeddedWorker:
    """A Celery worker with a thread pool, consuming in a thread of this process."""

    def __init__(self, app: ParleyCelery, *, concurrency: int) -> None:
        self._controller = WorkController(
            app=app,
            pool_cls=AppThreadPool,
            concurrency=concurrency,
            queues=[app.queue_names(name) for name in app.queues],
            hostname=f"embedded-{os.getpid()}-{next(_numbers)}@{socket.gethostname()}",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self._thread = threading.Thread(
            target=self._run, name="parley-embedded-worker", daemon=True
        )

    def start(self) -> None:
        """Start consuming in a background thread."""
        self._thread.start()

    def _run(self) -> None:
        try:
            self._controller.start()
        except BaseException:  # a dying worker thread must say why
            log.exception("the embedded worker stopped")
            raise

    def is_alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread.is_alive()

    async def stop(self) -> None:
        """Stop taking jobs, let running ones finish, and wait for the thread to end.

        Runs off the event loop, which the jobs still running need in order to finish.
        """
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._controller.stop(in_sighandler=False)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.warning("the embedded worker did not stop in time")
