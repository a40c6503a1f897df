"""An outbox row in memory, as the publisher and the relay handle it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley.outbox.models import EVENT, OutboxRow
from parley.realtime.bus import LogEvent


@dataclass(frozen=True)
class Pending:
    """A committed outbox row that may not be published yet."""

    row_id: int
    kind: str
    topic: str
    recipients: tuple[int, ...]
    body: str
    run_at: datetime | None = None

    @classmethod
    def of(cls, row: OutboxRow) -> Pending:
        """The in-memory copy of a row read from (or just written to) the database."""
        return cls.of_columns(row.id, row.kind, row.topic, row.recipients, row.body, row.run_at)

    @classmethod
    def of_columns(
        cls,
        row_id: int,
        kind: str,
        topic: str,
        recipients: Sequence[Any] | None,
        body: str,
        run_at: datetime | None,
    ) -> Pending:
        """The in-memory copy of a row's columns as stored (`recipients` a JSON list, or
        None), however they were read."""
        return cls(row_id, kind, topic, tuple(int(u) for u in recipients or ()), body, run_at)

    @property
    def is_event(self) -> bool:
        """True for an event, False for a job enqueue."""
        return self.kind == EVENT

    def log_event(self) -> LogEvent:
        """The event as the bus takes it."""
        return LogEvent(self.row_id, self.recipients, self.body, self.topic)
