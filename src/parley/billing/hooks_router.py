"""`POST /hooks/stripe`: Stripe's webhooks, verified, stored and acknowledged at once.

Served by `parley hooks` (a process of its own, so that webhook bursts never touch chat
traffic) and by `parley serve` (so that embedded mode needs no second process).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from parley.billing import webhooks
from parley.common.errors import NotFound
from parley.common.responses import errors
from parley.deps import SessionDep, SettingsDep

HOOKS_PREFIX = "/hooks"

router = APIRouter(prefix=HOOKS_PREFIX, tags=["hooks"])


class ReceivedOut(BaseModel):
    """The event is stored (or was already: `duplicate`); its application follows."""

    received: bool
    duplicate: bool


@router.post(
    "/stripe",
    responses=errors(400, 404, 413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "a Stripe event, exactly as Stripe signed it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> ReceivedOut:
    """Verify `Stripe-Signature`, store the event once, enqueue its application, answer 200
    (400: bad or missing signature; 404: billing is off)."""
    if not (settings.billing_enabled and settings.stripe_webhook_secret):
        raise NotFound("billing is not enabled on this server")
    payload = await request.body()
    event = webhooks.verified_event(payload, stripe_signature, settings.stripe_webhook_secret)
    stored = await webhooks.receive(session, event, payload)
    return ReceivedOut(received=True, duplicate=not stored)
