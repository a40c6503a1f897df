"""The jobs part of the app's lifespan: Celery app, queue, broker check, embedded worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from kombu.exceptions import ChannelError

from parley.db.engine import Database
from parley.ops.metrics import QUEUE_DEPTH
from parley.settings import Settings
from parley.worker._config import is_in_memory
from parley.worker._context import AppLoopRunner, JobContext
from parley.worker._embedded import EmbeddedWorker
from parley.worker._factory import ParleyCelery, create_celery
from parley.worker._limits import JobLimits
from parley.worker._queue import JobQueue
from parley.worker._spec import TaskSpec

Recovery = Callable[[JobContext], Awaitable[object]]

BROKER_CHECK_TIMEOUT = 2


class JobsRuntime:
    """What jobs need while the app runs; see `start`."""

    def __init__(
        self, celery: ParleyCelery, worker: EmbeddedWorker | None, context: JobContext
    ) -> None:
        self.celery = celery
        self.worker = worker
        self.context = context

    @property
    def queue(self) -> JobQueue:
        """Where the app sends jobs."""
        return self.celery.job_queue

    @classmethod
    def create(cls, settings: Settings, db: Database, tasks: Sequence[TaskSpec]) -> JobsRuntime:
        """The Celery app for `settings` and `tasks`; with the in-memory broker, a worker
        (not started) that runs them in this process, on the app's loop and database (the
        events its jobs commit are published by the app's own outbox, to this process's
        sockets too)."""
        context = JobContext(settings, JobLimits.from_settings(settings), db)
        runner = AppLoopRunner(asyncio.get_running_loop(), context)
        celery = create_celery(settings, tasks, runner)
        worker = None
        if is_in_memory(settings):
            worker = EmbeddedWorker(celery, concurrency=settings.worker_concurrency)
        return cls(celery, worker, context)

    async def start(self, recoveries: Sequence[Recovery] = ()) -> None:
        """Start the embedded worker, if any, after running `recoveries`: they queue again
        what the previous run of this process left unfinished (its in-memory broker lost
        the messages)."""
        if self.worker is not None:
            for recover in recoveries:
                await recover(self.context)
            self.worker.start()

    async def stop(self) -> None:
        """Stop the embedded worker (running jobs finish) and close broker connections."""
        if self.worker is not None:
            await self.worker.stop()
        await asyncio.to_thread(self.celery.close)

    async def check_broker(self) -> None:
        """Raise unless jobs can run: the broker answers, or the embedded worker is alive."""
        if self.worker is not None:
            if not self.worker.is_alive():
                raise RuntimeError("the embedded worker is not running")
            return
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_CHECK_TIMEOUT)

    async def refresh_metrics(self) -> None:
        """Sample the number of messages waiting in each of our queues, from the broker.

        Works the same for Redis, RabbitMQ and the in-memory broker (a passive queue
        declaration reports the queue's ready messages). When the broker does not answer
        within `BROKER_CHECK_TIMEOUT`, the samples are dropped rather than left stale or
        reported as 0: a scrape must not fail for the broker, nor claim an empty queue.
        """
        try:
            depths = await asyncio.wait_for(
                asyncio.to_thread(self._queue_depths), BROKER_CHECK_TIMEOUT * 2
            )
        except Exception:  # the broker is down or slow: /api/v1/health says which
            QUEUE_DEPTH.clear()
            return
        for name, depth in depths.items():
            QUEUE_DEPTH.labels(name).set(depth)

    def _queue_depths(self) -> dict[str, int]:
        depths = {}
        with self.celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_CHECK_TIMEOUT)
            for name in self.celery.queues:
                depths[name] = 0  # a queue nobody declared yet holds nothing
                # A passive declaration of a missing queue fails (and closes the channel on
                # AMQP): one channel per queue.
                with contextlib.suppress(ChannelError), conn.channel() as channel:
                    declared = channel.queue_declare(  # type: ignore[attr-defined]
                        self.celery.queue_names(name), passive=True
                    )
                    depths[name] = int(declared.message_count)
        return depths
