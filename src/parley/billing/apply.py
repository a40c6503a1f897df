"""Applying a stored Stripe event (the `billing` queue's job): the customer's account is
brought in line with the subscriptions Stripe has now (see `parley.billing.state`).

Robust to Stripe's delivery: an event applied before is skipped (`applied_at`), a late or
out-of-order event reads the current state anyway, and two jobs for one customer at once
cannot leave the older view behind (the write is a compare-and-set on the account's
version, retried with a fresh read of Stripe). Stripe unreachable: the job runs again later.
"""

from __future__ import annotations

import json
from datetime import timedelta

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.billing import accounts
from parley.billing.models import StripeEvent
from parley.billing.state import current_state
from parley.billing.stripe_api import StripeApi, field, stripe_api
from parley.common.errors import DomainError
from parley.db.base import utcnow
from parley.db.engine import Database
from parley.worker import DONE, JobContext, Outcome, RunLater

log = structlog.get_logger("parley.billing.apply")

# Compare-and-set rounds before giving up for now (each one read Stripe again).
MAX_ROUNDS = 5


async def apply_event(ctx: JobContext, event_id: str, *, attempt: int) -> Outcome:
    """Apply the stored event `event_id` once; what the task should do next."""
    async with ctx.db.session() as session:
        event = await session.get(StripeEvent, event_id)
        if event is None or event.applied_at is not None:
            return DONE
        customer_id = _customer_of(event.payload)
        account = await accounts.account_for_customer(session, customer_id) if customer_id else None
    if account is None:  # not about one of our customers
        await _mark_applied(ctx.db, event_id)
        return DONE
    if not ctx.settings.billing_enabled:  # a worker started without the Stripe settings
        error = "this worker has no PARLEY_STRIPE_SECRET_KEY: the event waits for one that has"
        log.error("stripe event not applied", event_id=event_id, error=error)
        return RunLater(utcnow() + timedelta(seconds=ctx.limits.retry_delay(attempt)), error)
    try:
        async with stripe_api(ctx.settings) as api:
            changed = await sync_account(ctx.db, api, account.user_id, event_id=event_id)
    except DomainError as exc:  # Stripe unreachable, or refusing: try again later
        delay = ctx.limits.retry_delay(attempt)
        log.warning("stripe event not applied yet", event_id=event_id, error=exc.detail)
        return RunLater(utcnow() + timedelta(seconds=delay), error=exc.detail)
    if changed is None:
        error = "the account kept changing while it was applied"
        return RunLater(utcnow() + timedelta(seconds=ctx.limits.retry_delay(attempt)), error)
    log.info("stripe event applied", event_id=event_id, changed=changed)
    return DONE


async def sync_account(db: Database, api: StripeApi, user_id: int, *, event_id: str) -> bool | None:
    """Store Stripe's current state of the user's subscription, and mark the event applied,
    in one transaction. True when the account changed; None when other writers kept
    changing it (the job then runs again)."""
    for _ in range(MAX_ROUNDS):
        async with db.session() as session:
            account = await accounts.account_of(session, user_id)
            if account is None or account.stripe_customer_id is None:
                return False
            state = current_state(await api.subscriptions_of(account.stripe_customer_id))
            stored = await accounts.store_state(session, account, state)
            if stored is None:
                await session.rollback()  # another job wrote meanwhile: read Stripe again
                continue
            await _mark(session, event_id)
            await session.commit()
            return stored
    return None


def _customer_of(payload: str) -> str | None:
    """The customer a subscription or invoice event is about."""
    try:
        customer = field(field(json.loads(payload), "data"), "object")
    except ValueError:
        return None
    value = field(customer, "customer")
    if isinstance(value, dict):  # expanded
        value = value.get("id")
    return value if isinstance(value, str) else None


async def _mark(session: AsyncSession, event_id: str) -> None:
    await session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id, StripeEvent.applied_at.is_(None))
        .values(applied_at=utcnow())
    )


async def _mark_applied(db: Database, event_id: str) -> None:
    async with db.session() as session:
        await _mark(session, event_id)
        await session.commit()
