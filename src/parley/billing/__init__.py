"""Billing: the `free` and `plus` plans, paid with Stripe.

- `plans`: the limits of each plan, read from one place; `limits.check_limit` is what the
  chats and jobs services call where a limit bites (nothing while billing is off).
- `service` and `router`: `/api/v1/billing` (the caller's Billing, a SetupIntent for
  Stripe.js, subscribing and cancelling), talking to Stripe through `stripe_api`.
- `webhooks` and `hooks_router`: `POST /hooks/stripe` verifies, stores and enqueues each
  event; `apply` (the `billing` queue's task, `tasks`) brings the account in line with
  Stripe's current state and emits `billing.updated`.
"""

from parley.billing.limits import check_limit, plan_limits_enforced
from parley.billing.plans import Limit

__all__ = ["Limit", "check_limit", "plan_limits_enforced"]
