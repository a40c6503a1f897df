"""The relay: publishes whatever the fast path left in the outbox, in id order.

Every `parley serve` process runs one; one of them leads at a time (`Leadership`). Each
tick (every `interval`) the leader:

1. after a Redis restart that kept its data, republishes the events of the last
   `keep_published` seconds: whatever the restart lost (its last second of writes, say)
   is appended again, the rest is recognized by its row id and skipped;
2. renews the fast path's lease when nothing is held back; otherwise it closes the fast
   path, publishes every unpublished event in id order (older than `grace` while the fast
   path is open, all of them once it is closed), and opens the fast path again when no
   deferred row is left;
3. sends the job rows the broker refused earlier, with a backoff of its own;
4. prunes published rows and runs the housekeeping hooks it was given (job sweeps).

So a row left behind by a crash between commit and publish, by a Redis outage or by a
broker outage is out within seconds of the dependency answering again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import structlog

from parley.db.base import utcnow
from parley.db.engine import Database
from parley.outbox import store
from parley.outbox.leadership import Leadership
from parley.outbox.models import EVENT, JOB
from parley.outbox.publication import Publication

log = structlog.get_logger("parley.outbox.relay")

Housekeeping = Callable[[], Awaitable[object]]
HOUSEKEEPING_EVERY_SECONDS = 5.0
JOB_RETRY_MAX_SECONDS = 10.0


class Relay:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        publication: Publication,
        *,
        interval: float,
        grace: float,
        keep_published: float,
        housekeeping: Sequence[Housekeeping] = (),
    ) -> None:
        self._db = db
        self._publication = publication
        self._bus = publication.bus
        self._interval = interval
        self._grace = grace
        self._keep = keep_published
        self._housekeeping = list(housekeeping)
        self._leadership = Leadership(db)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._generation = self._bus.generation
        self._last_housekeeping = 0.0
        self._job_backoff = 0.0
        self._next_job_try = 0.0

    def start(self) -> None:
        """Start relaying in the background."""
        self._task = asyncio.create_task(self._run(), name="parley-outbox-relay")

    def wake(self) -> None:
        """Run a tick now (the fast path left something over)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop relaying and give up the leadership."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
        await self._leadership.release()

    async def _run(self) -> None:
        while not self._closing:
            busy = False
            try:
                if await self._leadership.is_leader():
                    busy = await self.tick()
            except Exception as exc:  # a dependency is down: the next tick tries again
                log.warning("relay tick failed", error=f"{type(exc).__name__}: {exc}"[:300])
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def tick(self) -> bool:
        """One round of the leader's work; True when there is more to do right away."""
        await self._republish_after_restart()
        busy = await self._relay_events()
        await self._relay_jobs()
        now = time.monotonic()
        if now - self._last_housekeeping >= HOUSEKEEPING_EVERY_SECONDS:
            self._last_housekeeping = now
            await self._housekeep()
        return busy

    async def _republish_after_restart(self) -> None:
        generation = self._bus.generation
        if generation == self._generation:
            return
        if await self._bus.kept_its_data():
            since = utcnow() - timedelta(seconds=self._keep)
            async with self._db.session() as session:
                rows = await store.recently_published_events(session, since)
            await self._bus.close_gate()
            for start in range(0, len(rows), store.BATCH):
                await self._publication.events(rows[start : start + store.BATCH], gated=False)
            log.info("republished recent events after a Redis restart", rows=len(rows))
        self._generation = generation

    async def _relay_events(self) -> bool:
        open_ = await self._bus.gate_is_open()
        older_than = utcnow() - timedelta(seconds=self._grace) if open_ else None
        rows = await store.unpublished(self._db, kind=EVENT, older_than=older_than)
        if rows:
            if open_:
                await self._bus.close_gate()
            outcome = await self._publication.events(rows, gated=False)
            await store.mark_published(self._db, outcome.done)
            log.info("relayed events", rows=len(outcome.done), fast_path_open=False)
            return True
        if not open_ and not await self._bus.reopen_gate():
            # A deferred row is not appended yet: it is committed, so the next read finds it.
            await asyncio.sleep(min(self._interval, 0.05))
            return True
        return False

    async def _relay_jobs(self) -> None:
        now = time.monotonic()
        if now < self._next_job_try:
            return
        older_than = utcnow() - timedelta(seconds=self._grace)
        rows = await store.unpublished(self._db, kind=JOB, older_than=older_than)
        if not rows:
            self._job_backoff = 0.0
            return
        outcome = await self._publication.jobs(rows)
        await store.mark_published(self._db, outcome.done)
        if outcome.failed:
            self._job_backoff = min(max(self._job_backoff * 2, 0.5), JOB_RETRY_MAX_SECONDS)
            self._next_job_try = now + self._job_backoff
        else:
            self._job_backoff = 0.0

    async def _housekeep(self) -> None:
        async with self._db.session() as session:
            await store.prune(session, self._keep)
        for hook in self._housekeeping:
            try:
                await hook()
            except Exception as exc:  # one hook's failure must not stop the others
                log.warning("housekeeping failed", error=f"{type(exc).__name__}: {exc}"[:300])
