"""Sending task messages to the broker, routed to the queue each task names."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import Celery

from parley.common.errors import Unavailable
from parley.db.base import utcnow
from parley.worker._limits import JobLimits
from parley.worker._spec import QueueNames, TaskSpec

# A publish waits this long at most for a broker that is down before giving up.
SEND_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


class BrokerUnavailable(Unavailable):
    """The job could not be handed to the broker."""


def capped_eta(run_at: datetime | None, limits: JobLimits) -> datetime | None:
    """The ETA to send for a run time: None when due, else at most `eta_hold` ahead.

    A later run time is reached in hops: the task, delivered early, sends itself again.
    """
    now = utcnow()
    if run_at is None or run_at <= now:
        return None
    return min(run_at, now + timedelta(seconds=limits.eta_hold))


class JobQueue:
    """Sends tasks through one Celery app; `send_async` publishes off the event loop."""

    def __init__(
        self, celery: Celery, limits: JobLimits, tasks: Sequence[TaskSpec], names: QueueNames
    ) -> None:
        self.celery = celery
        self.limits = limits
        self._queues = {task.name: names(task.queue) for task in tasks}

    def send(self, task: str, args: list[Any], *, run_at: datetime | None = None) -> None:
        """Publish one task message (blocking); raises BrokerUnavailable when it cannot."""
        try:
            self.celery.send_task(
                task,
                args=args,
                queue=self._queues[task],
                eta=capped_eta(run_at, self.limits),
                retry=True,
                retry_policy=SEND_RETRY_POLICY,
            )
        except Exception as exc:  # kombu raises many kinds; each means "not sent"
            raise BrokerUnavailable(f"the job queue is unavailable: {exc}"[:300]) from exc

    async def send_async(self, task: str, args: list[Any], run_at: datetime | None) -> None:
        """`send` off the event loop (the outbox's job sender)."""
        await asyncio.to_thread(self.send, task, args, run_at=run_at)
