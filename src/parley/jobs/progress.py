"""A running job's progress, written at most once per interval: the latest step wins.

Every write of a job's progress is a transaction with its `job.updated` event, published
and delivered to the owner. A step that is over within a fraction of a second shows the
owner nothing they could read, so it is not written on its own: a step reached while the
last write is younger than the interval waits until the interval has passed, and is then
written only if the job is still running, as the latest step reached by then. A step
reached after a quiet interval is written at once. A job that finishes within one
interval of its claim goes from `running` straight to its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("parley.jobs")

ProgressWrite = Callable[[int], Awaitable[None]]

# A parse job's progress at each of its steps, as its owner sees it.
PROGRESS = {"queued": 0, "fetching": 10, "parsing": 60, "storing": 90, "done": 100}


class ProgressReporter:
    """Writes a running job's progress through `write`, at most once per `interval` seconds.

    `reported` is the progress the job's row already shows (written by its claim, just
    now). One attempt calls `advance` for each step, one call at a time, and `close` when
    it ends, whichever way.
    """

    def __init__(self, write: ProgressWrite, *, interval: float, reported: int) -> None:
        self._write = write
        self._interval = interval
        self._reported = self._reached = reported
        self._written_at = time.monotonic()
        self._later: asyncio.Task[None] | None = None
        self._writing_later = False
        self._closed = False

    @property
    def reported(self) -> int:
        """The progress last written."""
        return self._reported

    async def advance(self, progress: int) -> None:
        """The job reached `progress`: write it now, or when the interval has passed."""
        if self._closed or progress <= self._reached:
            return
        self._reached = progress
        if self._later is not None:  # a write is already due: it will take this step
            return
        wait = self._written_at + self._interval - time.monotonic()
        if wait <= 0:
            await self._flush()
        else:
            self._later = asyncio.create_task(self._write_later(wait), name="parley-job-progress")

    async def close(self) -> None:
        """Drop a write that is still waiting for its time; let one under way finish."""
        self._closed = True
        later = self._later
        if later is None:
            return
        if self._writing_later:
            await asyncio.wait([later])
        else:
            later.cancel()

    async def _write_later(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            self._writing_later = True
            try:
                await self._flush()
            except Exception as exc:  # the next step, or the job's end, is written anyway
                log.warning("could not write a job's progress", error=type(exc).__name__)
            finally:
                self._writing_later = False
            if self._closed or self._reached <= self._reported:
                break
            delay = self._interval  # steps reached during the write wait their turn
        self._later = None

    async def _flush(self) -> None:
        progress = self._reached
        if progress <= self._reported:
            return
        self._written_at = time.monotonic()
        await self._write(progress)
        self._reported = progress
