"""The fast path: each process publishes the rows it committed, at once and in commit order.

Rows are handed over right after their transaction commits (`submit`), gathered into
batches by one task, and published: events with one round trip to the bus, jobs to the
broker. The request that committed them waits (at most `wait_seconds`) until its rows are
out or held back for the relay, so that a client's next request can never overtake them.

When the bus fails, the process stops publishing and, as soon as the bus answers again,
closes the fast path for everyone and records the rows it holds as deferred: from then on
the relay publishes them, in id order, before the fast path opens again. Rows whose
publication is recorded are marked published in the database in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence

import structlog

from parley.db.engine import Database
from parley.outbox import store
from parley.outbox.items import Pending
from parley.outbox.publication import Publication

log = structlog.get_logger("parley.outbox")

BATCH = 256
RECOVERY_BACKOFF_MAX_SECONDS = 1.0
MARK_BACKOFF_MAX_SECONDS = 2.0
# Rows published within this long are marked with one statement: under load that is one
# UPDATE for dozens of sends instead of one each (the relay waits far longer, see relay).
MARK_COALESCE_SECONDS = 0.1


class OutboxPublisher:
    """Publishes this process's committed rows; see the module docstring."""

    def __init__(
        self,
        db: Database,
        publication: Publication,
        *,
        wait_seconds: float,
        on_left_over: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._publication = publication
        self.wait_seconds = wait_seconds
        self._on_left_over = on_left_over
        self._queue: list[tuple[Pending, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._broken: list[tuple[Pending, asyncio.Future[None]]] = []
        self._to_mark: list[int] = []
        self._mark_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the publishing and marking tasks."""
        self._tasks = [
            asyncio.create_task(self._publish_forever(), name="parley-outbox-publisher"),
            asyncio.create_task(self._mark_forever(), name="parley-outbox-marker"),
        ]

    async def close(self) -> None:
        """Publish what is queued (briefly), mark what is published, then stop."""
        self._closing = True
        self._wake.set()
        self._mark_wake.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.wait_seconds + 2)
        for task in [*self._tasks, self._recovery]:
            if task is not None:
                task.cancel()
        for _, future in self._queue + self._broken:
            if not future.done():
                future.set_result(None)

    def submit(self, rows: Sequence[Pending]) -> list[asyncio.Future[None]]:
        """Queue committed rows; each future completes when its row is out or left over."""
        loop = asyncio.get_running_loop()
        futures = []
        for row in rows:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append((row, future))
            futures.append(future)
        self._wake.set()
        return futures

    async def settle(self, futures: Sequence[asyncio.Future[None]]) -> None:
        """Wait for `futures` at most `wait_seconds`; never raises."""
        pending = [f for f in futures if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.wait_seconds)

    # -- publishing -------------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        while not (self._closing and not self._queue):
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                if self._broken:  # the bus failed: everything waits for the recovery
                    self._broken.extend(batch)
                    continue
                await self._publish(batch)

    async def _publish(self, batch: list[tuple[Pending, asyncio.Future[None]]]) -> None:
        events = [(row, f) for row, f in batch if row.is_event]
        jobs = [(row, f) for row, f in batch if not row.is_event]
        await asyncio.gather(self._publish_events(events), self._publish_jobs(jobs))

    async def _publish_events(self, items: list[tuple[Pending, asyncio.Future[None]]]) -> None:
        if not items:
            return
        try:
            outcome = await self._publication.events([row for row, _ in items], gated=True)
        except Exception as exc:  # unreachable or timed out: nothing is known to be out
            log.warning("publishing failed; holding events for the relay", error=str(exc)[:200])
            self._broken.extend(items)
            if self._recovery is None or self._recovery.done():
                self._recovery = asyncio.create_task(self._recover(), name="parley-outbox-recover")
            return
        self._marked(outcome.done)
        if outcome.deferred:
            self._on_left_over()
        _resolve(f for _, f in items)

    async def _publish_jobs(self, items: list[tuple[Pending, asyncio.Future[None]]]) -> None:
        if not items:
            return
        outcome = await self._publication.jobs([row for row, _ in items])
        self._marked(outcome.done)
        if outcome.failed:
            self._on_left_over()
        _resolve(f for _, f in items)

    async def _recover(self) -> None:
        """Once the bus answers, close the fast path and defer the held rows to the relay."""
        backoff = 0.05
        while self._broken and not self._closing:
            held = list(self._broken)
            try:
                await self._publication.bus.close_gate([row.row_id for row, _ in held])
            except Exception:  # still unreachable
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECOVERY_BACKOFF_MAX_SECONDS)
                continue
            log.info("the fast path is closed; the relay publishes the held events", held=len(held))
            self._broken = self._broken[len(held) :]
            _resolve(f for _, f in held)
            self._on_left_over()
        if not self._broken:
            self._wake.set()

    # -- marking ----------------------------------------------------------------------------

    def _marked(self, row_ids: list[int]) -> None:
        if row_ids:
            self._to_mark.extend(row_ids)
            self._mark_wake.set()

    async def _mark_forever(self) -> None:
        backoff = 0.05
        while not (self._closing and not self._to_mark):
            await self._mark_wake.wait()
            if not self._closing:
                await asyncio.sleep(MARK_COALESCE_SECONDS)
            self._mark_wake.clear()
            while self._to_mark:
                ids = self._to_mark[:1000]
                try:
                    await store.mark_published(self._db, ids)
                except Exception as exc:  # the relay would republish them: harmless
                    if self._closing:
                        return
                    log.warning("could not mark rows published", error=str(exc)[:200])
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MARK_BACKOFF_MAX_SECONDS)
                    continue
                backoff = 0.05
                del self._to_mark[: len(ids)]


def _resolve(futures: Iterable[asyncio.Future[None]]) -> None:
    for future in futures:
        with contextlib.suppress(asyncio.InvalidStateError):
            future.set_result(None)
