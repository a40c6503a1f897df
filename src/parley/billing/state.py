"""A customer's subscription state, read from Stripe's subscription objects (pure functions).

Applying Stripe's events means bringing an account in line with the subscriptions Stripe
has *now*: whichever event arrives, late, twice or out of order, the job asks Stripe for the
customer's subscriptions and keeps the one that matters. So the newest state always wins,
and an event applied again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from parley.billing.plans import PAID_STATUSES
from parley.billing.stripe_api import field


@dataclass(frozen=True)
class SubscriptionState:
    """What an account keeps of its subscription."""

    subscription_id: str | None
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool


NO_SUBSCRIPTION = SubscriptionState(None, "none", None, False)


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _period_end(subscription: Any) -> datetime | None:
    """The end of the paid period: on the subscription (older API versions) or on its
    items (newer ones)."""
    end = _timestamp(field(subscription, "current_period_end"))
    if end is not None:
        return end
    items = field(field(subscription, "items"), "data") or []
    ends = [_timestamp(field(item, "current_period_end")) for item in items]
    return max((e for e in ends if e is not None), default=None)


def state_of(subscription: Any) -> SubscriptionState:
    """The state one Stripe subscription object describes."""
    return SubscriptionState(
        subscription_id=str(field(subscription, "id")),
        status=str(field(subscription, "status") or "none"),
        current_period_end=_period_end(subscription),
        cancel_at_period_end=bool(field(subscription, "cancel_at_period_end")),
    )


def current_state(subscriptions: Iterable[Any]) -> SubscriptionState:
    """The state that counts among a customer's subscriptions: the newest one that pays,
    else the newest one, else none."""
    ordered = sorted(subscriptions, key=lambda s: field(s, "created") or 0, reverse=True)
    paying = [s for s in ordered if field(s, "status") in PAID_STATUSES]
    chosen = paying[0] if paying else (ordered[0] if ordered else None)
    return NO_SUBSCRIPTION if chosen is None else state_of(chosen)
