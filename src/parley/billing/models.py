"""Billing tables: each user's Stripe customer and subscription state, and Stripe's events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigIntId, utcnow


class BillingAccount(Base):
    """A user's Stripe customer (created on first use) and the state of their subscription.

    `status` is the subscription's Stripe status (`none` before any); the plan follows from
    it (`parley.billing.plans.plan_for`). `version` grows with every change: applying
    Stripe's state is a compare-and-set on it, so a slower writer with an older view of
    Stripe never overwrites a newer one.
    """

    __tablename__ = "billing_accounts"

    user_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    subscription_id: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(32), default="none", server_default="none")
    current_period_end: Mapped[datetime | None] = mapped_column(default=None)
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=false())
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripeEvent(Base):
    """A verified Stripe event, stored as received (keyed by Stripe's id: a repeat is
    recognised), and when its application finished."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index("ix_stripe_events_received_at", "received_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
