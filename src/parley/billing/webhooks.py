"""Receiving Stripe's webhooks: verify, store once, and leave the work to a job.

A verified event is stored under Stripe's id with its application enqueued (the outbox:
same transaction), and the request answers at once; nothing slow happens while Stripe
waits. An event whose id is stored already is acknowledged and ignored.
"""

from __future__ import annotations

import json
from typing import Any

import stripe
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.billing.models import StripeEvent
from parley.common.errors import BadRequest
from parley.db.base import utcnow
from parley.outbox import enqueue

log = structlog.get_logger("parley.billing.webhooks")

APPLY_TASK = "parley.billing.apply_event"
BILLING_QUEUE = "billing"
# The events that move a plan; every other verified event is stored and acknowledged only.
APPLIED_TYPES = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_succeeded",  # the older name of invoice.paid
        "invoice.payment_failed",
    }
)


def verified_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event in `payload` if `signature` is Stripe's for it, signed recently (within
    the library's tolerance, 5 minutes); BadRequest otherwise."""
    if not signature:
        raise BadRequest("the Stripe-Signature header is missing")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = json.loads(text)
    except stripe.SignatureVerificationError as exc:
        raise BadRequest(f"the Stripe-Signature is not valid: {exc.user_message}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the body is not a JSON Stripe event") from exc
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and 0 < len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and len(event["type"]) <= 255
    ):
        raise BadRequest("the body is not a Stripe event")
    return event


async def receive(session: AsyncSession, event: dict[str, Any], payload: bytes) -> bool:
    """Store a verified event and enqueue its application; False when it was stored before."""
    event_id, event_type = event["id"], event["type"]
    if await session.get(StripeEvent, event_id) is not None:
        return False
    session.add(
        StripeEvent(
            id=event_id, type=event_type, payload=payload.decode("utf-8"), received_at=utcnow()
        )
    )
    if event_type in APPLIED_TYPES:
        enqueue(session, APPLY_TASK, [event_id])
    try:
        await session.commit()
    except IntegrityError:  # the same event, delivered twice at once: the other one won
        await session.rollback()
        return False
    log.info("stripe event received", event_id=event_id, event_type=event_type)
    return True
