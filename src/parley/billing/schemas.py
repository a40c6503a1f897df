"""Request and response bodies of the billing routes, and the Billing object."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from parley.billing.models import BillingAccount
from parley.billing.plans import PLANS, plan_for
from parley.common.schemas import CamelModel, RequestModel


class LimitsOut(CamelModel):
    """What the plan allows."""

    max_group_members: int
    parse_jobs_per_day: int


class BillingOut(CamelModel):
    """The caller's plan, its Stripe subscription's status, and the plan's limits."""

    plan: Literal["free", "plus"]
    status: str = Field(
        description="`none` (never subscribed), or the subscription's Stripe status: "
        "`active`, `past_due`, `canceled`, ..."
    )
    current_period_end: datetime | None
    cancel_at_period_end: bool
    limits: LimitsOut

    @classmethod
    def of(cls, account: BillingAccount | None) -> BillingOut:
        """The Billing of an account (a user without one is on `free`, never subscribed)."""
        status = account.status if account is not None else "none"
        plan = plan_for(status)
        limits = PLANS[plan]
        return cls(
            plan=plan,
            status=status,
            current_period_end=account.current_period_end if account is not None else None,
            cancel_at_period_end=account.cancel_at_period_end if account is not None else False,
            limits=LimitsOut(
                max_group_members=limits.max_group_members,
                parse_jobs_per_day=limits.parse_jobs_per_day,
            ),
        )


class BillingConfigOut(CamelModel):
    """What the web page needs to load Stripe.js: the publishable key and the script."""

    publishable_key: str | None = Field(description="Stripe's publishable key (pk_...)")
    stripe_js_url: str = Field(description="where to load Stripe.js from")


class SetupIntentOut(CamelModel):
    """A SetupIntent's client secret, for Stripe.js to collect and confirm a card."""

    client_secret: str


class SubscribeIn(RequestModel):
    """The PaymentMethod (from Stripe.js) to subscribe with."""

    payment_method_id: str = Field(
        min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$", description="pm_..."
    )
