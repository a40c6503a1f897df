"""Billing accounts: created on first use, changed only by a compare-and-set on `version`,
and each change told to its user (`billing.updated`) through the outbox."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.billing.models import BillingAccount
from parley.billing.schemas import BillingOut
from parley.billing.state import SubscriptionState
from parley.db.base import utcnow
from parley.outbox import emit

BILLING_UPDATED = "billing.updated"


async def account_of(session: AsyncSession, user_id: int) -> BillingAccount | None:
    """The user's billing account, if they have one."""
    return await session.get(BillingAccount, user_id, populate_existing=True)


async def account_for_customer(session: AsyncSession, customer_id: str) -> BillingAccount | None:
    """The account of a Stripe customer (None for a customer that is not one of ours)."""
    account: BillingAccount | None = await session.scalar(
        select(BillingAccount).where(BillingAccount.stripe_customer_id == customer_id)
    )
    return account


async def ensure_account(session: AsyncSession, user_id: int) -> BillingAccount:
    """The user's account, created (and committed) if missing; concurrent calls make one."""
    account = await account_of(session, user_id)
    if account is not None:
        return account
    session.add(BillingAccount(user_id=user_id, updated_at=utcnow()))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # a concurrent request created it first
    account = await account_of(session, user_id)
    assert account is not None
    return account


async def remember_customer(session: AsyncSession, user_id: int, customer_id: str) -> str:
    """Store the user's Stripe customer unless one is stored already; the one stored."""
    await session.execute(
        update(BillingAccount)
        .where(BillingAccount.user_id == user_id, BillingAccount.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    await session.commit()
    account = await account_of(session, user_id)
    assert account is not None
    assert account.stripe_customer_id is not None
    return account.stripe_customer_id


def _differs(account: BillingAccount, state: SubscriptionState) -> bool:
    return (
        account.subscription_id,
        account.status,
        account.current_period_end,
        account.cancel_at_period_end,
    ) != (
        state.subscription_id,
        state.status,
        state.current_period_end,
        state.cancel_at_period_end,
    )


async def store_state(
    session: AsyncSession, account: BillingAccount, state: SubscriptionState
) -> bool | None:
    """Write `state` if the account is still at the version it was read at.

    True: written (and `billing.updated` emitted); False: nothing to change; None: someone
    changed the account since it was read, from a view of Stripe at least as new as ours.
    The caller commits.
    """
    if not _differs(account, state):
        return False
    changed: BillingAccount | None = await session.scalar(
        update(BillingAccount)
        .where(
            BillingAccount.user_id == account.user_id,
            BillingAccount.version == account.version,
        )
        .values(
            subscription_id=state.subscription_id,
            status=state.status,
            current_period_end=state.current_period_end,
            cancel_at_period_end=state.cancel_at_period_end,
            version=BillingAccount.version + 1,
            updated_at=utcnow(),
        )
        .returning(BillingAccount)
    )
    if changed is None:
        return None
    billing = BillingOut.of(changed)
    emit(session, [changed.user_id], BILLING_UPDATED, billing.model_dump(mode="json"))
    return True
