"""The one way a service emits an event or enqueues a job: as part of its transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.base import utcnow
from parley.outbox.models import EVENT, JOB, OutboxRow
from parley.realtime.codec import encode_body


def emit_row(user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]) -> OutboxRow:
    """An outbox row for one event to `user_ids` (not yet added to any session)."""
    return OutboxRow(
        kind=EVENT,
        topic=event_type,
        recipients=list(dict.fromkeys(user_ids)),
        body=encode_body(event_type, data),
        created_at=utcnow(),
    )


def emit(
    session: AsyncSession, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
) -> None:
    """Record an event for `user_ids`; it is published once the session's transaction commits.

    An event with no recipient is not recorded.
    """
    row = emit_row(user_ids, event_type, data)
    if row.recipients:
        session.add(row)


def enqueue(
    session: AsyncSession, task: str, args: Sequence[Any], *, run_at: datetime | None = None
) -> None:
    """Record a job for the broker; it is sent once the session's transaction commits."""
    session.add(
        OutboxRow(
            kind=JOB,
            topic=task,
            body=json.dumps(list(args), separators=(",", ":")),
            run_at=run_at,
            created_at=utcnow(),
        )
    )
