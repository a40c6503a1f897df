"""Stored Stripe events: queued again when a broker lost them, forgotten when old."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from parley.billing.models import StripeEvent
from parley.billing.webhooks import APPLIED_TYPES, APPLY_TASK
from parley.db.base import utcnow
from parley.outbox import enqueue
from parley.worker import JobContext

# Stripe retries an unacknowledged event for up to 3 days: a repeat is recognised for longer.
KEEP_EVENTS = timedelta(days=30)


async def requeue_unapplied_events(ctx: JobContext) -> int:
    """Enqueue again every stored event not applied yet (at start of an embedded worker,
    whose in-memory broker lost the messages of the previous process)."""
    async with ctx.db.session() as session:
        pending = list(
            await session.scalars(
                select(StripeEvent.id).where(
                    StripeEvent.applied_at.is_(None), StripeEvent.type.in_(APPLIED_TYPES)
                )
            )
        )
        for event_id in pending:
            enqueue(session, APPLY_TASK, [event_id])
        await session.commit()
    return len(pending)


async def forget_old_events(ctx: JobContext) -> int:
    """Delete applied events older than `KEEP_EVENTS` (the relay's housekeeping)."""
    async with ctx.db.session() as session:
        result = await session.execute(
            delete(StripeEvent).where(
                StripeEvent.received_at < utcnow() - KEEP_EVENTS,
                StripeEvent.applied_at.is_not(None),
            )
        )
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
