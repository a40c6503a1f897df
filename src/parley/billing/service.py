"""The rules of billing, API side: the caller's Billing, a SetupIntent, subscribe, cancel.

The account is read (and its Stripe customer created and committed, on first use), Stripe
is called, then its answer is written with a compare-and-set (see `accounts.store_state`).
If Stripe cannot be reached the request answers 503 and nothing changed on our side; a
retry repeats the same idempotent calls. Two subscribes at once (two cards, two tabs) make
one subscription: on PostgreSQL one transaction is held across the call to Stripe, keeping
the caller's account row locked until the subscription is stored; on SQLite (embedded, one
process) the caller's subscribes take turns in the process instead, since SQLite could only
lock the whole database across Stripe's call.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from parley.billing import accounts
from parley.billing.models import BillingAccount
from parley.billing.plans import PAID_STATUSES
from parley.billing.schemas import BillingOut
from parley.billing.state import SubscriptionState, state_of
from parley.billing.stripe_api import StripeApi
from parley.common.errors import Conflict
from parley.common.keyed_locks import KeyedLocks
from parley.db.locks import lock_row

# Subscribes in progress on an SQLite database, by user id (see the module's docstring).
_embedded_subscribes = KeyedLocks()


async def get_billing(session: AsyncSession, user_id: int) -> BillingOut:
    """The caller's plan, status and limits."""
    return BillingOut.of(await accounts.account_of(session, user_id))


async def _customer(
    session: AsyncSession, api: StripeApi, user_id: int, username: str
) -> tuple[BillingAccount, str]:
    """The account and its Stripe customer, both created on first use and remembered."""
    account = await accounts.ensure_account(session, user_id)
    customer_id = account.stripe_customer_id
    if customer_id is None:
        created = await api.create_customer(user_id, username)
        customer_id = await accounts.remember_customer(session, user_id, created)
        account = await accounts.ensure_account(session, user_id)
    return account, customer_id


async def create_setup_intent(
    session: AsyncSession, api: StripeApi, *, user_id: int, username: str
) -> str:
    """The client secret of a SetupIntent for the caller's Stripe customer."""
    _, customer_id = await _customer(session, api, user_id, username)
    return await api.create_setup_intent(customer_id)


async def subscribe(
    session: AsyncSession, api: StripeApi, *, user_id: int, username: str, payment_method_id: str
) -> BillingOut:
    """Subscribe the caller to `plus` with the card `payment_method_id`.

    Already subscribed (a retried request): the current Billing. A declined card raises
    PaymentRequired with Stripe's message, and nothing changes.
    """
    if session.get_bind().dialect.name == "sqlite":
        # Before the first read: the caller's next subscribe reads what this one stored.
        async with _embedded_subscribes.hold(user_id):
            return await _subscribe(session, api, user_id, username, payment_method_id)
    return await _subscribe(session, api, user_id, username, payment_method_id)


async def _subscribe(
    session: AsyncSession, api: StripeApi, user_id: int, username: str, payment_method_id: str
) -> BillingOut:
    account, customer_id = await _customer(session, api, user_id, username)
    if session.get_bind().dialect.name == "postgresql":
        # One subscribe at a time per account: a second request (another card, another
        # tab) waits here until the first is stored, then finds the account paid.
        await lock_row(session, BillingAccount.user_id, user_id)
        account = await accounts.account_of(session, user_id) or account
    if account.status in PAID_STATUSES:
        return BillingOut.of(account)
    # The same card after the same previous subscription is the same attempt: a retry gets
    # the subscription the first try created.
    attempt = f"{customer_id}-{payment_method_id}-{account.subscription_id or 'first'}"
    subscription = await api.subscribe(customer_id, payment_method_id, attempt_key=attempt)
    return await _store(session, account, state_of(subscription))


async def cancel(session: AsyncSession, api: StripeApi, *, user_id: int) -> BillingOut:
    """Cancel the caller's subscription at the end of the paid period."""
    account = await accounts.account_of(session, user_id)
    if account is None or account.subscription_id is None or account.status not in PAID_STATUSES:
        raise Conflict("there is no subscription to cancel")
    if account.cancel_at_period_end:
        return BillingOut.of(account)
    subscription = await api.cancel_at_period_end(account.subscription_id)
    return await _store(session, account, state_of(subscription))


async def _store(
    session: AsyncSession, account: BillingAccount, state: SubscriptionState
) -> BillingOut:
    """Keep Stripe's answer, unless a webhook already brought something at least as new."""
    await accounts.store_state(session, account, state)
    await session.commit()
    return BillingOut.of(await accounts.account_of(session, account.user_id))
