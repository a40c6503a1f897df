"""Routes under /billing: parse, call one service function, shape the answer.

While billing is off every route answers 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends

from parley.auth.deps import CurrentUser
from parley.billing import service
from parley.billing.schemas import BillingConfigOut, BillingOut, SetupIntentOut, SubscribeIn
from parley.billing.stripe_api import StripeApi, stripe_api
from parley.common.errors import NotFound
from parley.common.responses import ANY_ROUTE, SIGNED_IN, errors
from parley.deps import SessionDep, SettingsDep

BILLING_OFF = "billing is not enabled on this server"


async def billing_on(settings: SettingsDep) -> None:
    """404 while billing is off."""
    if not settings.billing_enabled:
        raise NotFound(BILLING_OFF)


async def get_stripe(settings: SettingsDep) -> AsyncIterator[StripeApi]:
    """A Stripe client for one request."""
    if not settings.billing_enabled:
        raise NotFound(BILLING_OFF)
    async with stripe_api(settings) as api:
        yield api


StripeDep = Annotated[StripeApi, Depends(get_stripe)]

router = APIRouter(
    tags=["billing"],
    dependencies=[Depends(billing_on)],
    responses=errors(*ANY_ROUTE, *SIGNED_IN, 404),
)


@router.get("/billing")
async def get_billing(user: CurrentUser, session: SessionDep) -> BillingOut:
    """The caller's plan, its status and its limits."""
    return await service.get_billing(session, user.id)


@router.get("/billing/config")
async def get_billing_config(user: CurrentUser, settings: SettingsDep) -> BillingConfigOut:
    """What the web page needs to load Stripe.js: the publishable key and the script."""
    return BillingConfigOut(
        publishable_key=settings.stripe_publishable_key, stripe_js_url=settings.stripe_js_url
    )


@router.post("/billing/setup-intent")
async def create_setup_intent(
    user: CurrentUser, session: SessionDep, api: StripeDep
) -> SetupIntentOut:
    """A SetupIntent for the caller's Stripe customer (created on first use): Stripe.js
    confirms it with the card, and Parley gets only the PaymentMethod id."""
    secret = await service.create_setup_intent(
        session, api, user_id=user.id, username=user.username
    )
    return SetupIntentOut(client_secret=secret)


@router.post("/billing/subscription", responses=errors(402))
async def subscribe(
    body: SubscribeIn, user: CurrentUser, session: SessionDep, api: StripeDep
) -> BillingOut:
    """Subscribe to `plus` with a card saved through Stripe.js (402 when it is declined,
    with Stripe's message)."""
    return await service.subscribe(
        session,
        api,
        user_id=user.id,
        username=user.username,
        payment_method_id=body.payment_method_id,
    )


@router.delete("/billing/subscription", responses=errors(409))
async def cancel_subscription(user: CurrentUser, session: SessionDep, api: StripeDep) -> BillingOut:
    """Cancel the subscription at the end of the paid period (409 without one)."""
    return await service.cancel(session, api, user_id=user.id)
