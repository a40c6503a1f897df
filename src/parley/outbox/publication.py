"""Publishing outbox rows: events to the bus, jobs to the broker, each row at most once.

Events are appended by row id, which the bus makes idempotent. A job is sent under a claim
on its row id: a second publisher finds the claim and leaves it, so a job is not enqueued
twice (except if a process dies between the broker's acknowledgement and the claim being
kept, in which case the job's own claim on its row makes the second run a no-op).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from parley.outbox.items import Pending
from parley.realtime.bus import Appended, Bus

log = structlog.get_logger("parley.outbox")

JobSender = Callable[[str, list[Any], datetime | None], Awaitable[None]]
"""Sends one task message (name, arguments, run time); raises when the broker refuses it."""


@dataclass
class Outcome:
    """What became of a batch: rows that are out (or were already), deferred or failed."""

    done: list[int] = field(default_factory=list)
    deferred: list[Pending] = field(default_factory=list)
    failed: list[Pending] = field(default_factory=list)


class Publication:
    """Publishes batches of rows through one bus and one job sender."""

    def __init__(self, bus: Bus, send_job: JobSender | None) -> None:
        self.bus = bus
        self.send_job = send_job

    async def events(self, rows: Sequence[Pending], *, gated: bool) -> Outcome:
        """Append the event rows in order (one round trip); raises if the bus is unreachable."""
        outcome = Outcome()
        if not rows:
            return outcome
        results = await self.bus.append([r.log_event() for r in rows], gated=gated)
        for row, result in zip(rows, results, strict=True):
            if result is Appended.DEFERRED:
                outcome.deferred.append(row)
            else:
                outcome.done.append(row.row_id)
        return outcome

    async def jobs(self, rows: Sequence[Pending]) -> Outcome:
        """Send the job rows concurrently; a row the broker refused is `failed`."""
        outcome = Outcome()
        sent = await asyncio.gather(*(self._send(r) for r in rows))
        for row, ok in zip(rows, sent, strict=True):
            if ok:
                outcome.done.append(row.row_id)
            else:
                outcome.failed.append(row)
        return outcome

    async def _send(self, row: Pending) -> bool:
        if self.send_job is None:
            log.warning("no job queue: the job stays in the outbox", row_id=row.row_id)
            return False
        key = str(row.row_id)
        try:
            if not await self.bus.claim_send(key):
                return True  # sent, or being sent, by another publisher
        except Exception as exc:  # no claim store: send anyway, a duplicate is harmless
            log.warning("could not claim a job send", error=f"{type(exc).__name__}"[:80])
        try:
            await self.send_job(row.topic, json.loads(row.body), row.run_at)
        except Exception as exc:  # the broker is down: the relay sends it later
            log.warning(
                "could not send a job; the relay will", task=row.topic, error=str(exc)[:200]
            )
            await self._release(key, sent=False)
            return False
        await self._release(key, sent=True)
        return True

    async def _release(self, key: str, *, sent: bool) -> None:
        try:
            await self.bus.release_send(key, sent=sent)
        except Exception as exc:  # the claim expires by itself
            log.warning("could not release a job claim", error=f"{type(exc).__name__}"[:80])
