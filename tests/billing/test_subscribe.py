"""Subscribing, declines and cancelling, through the API of a real server against
localstripe, whose webhooks reach the server's `/hooks/stripe`."""

from __future__ import annotations

import asyncio

import pytest

from tests.billing.conftest import BillingStack
from tests.billing.fakestripe import (
    CARD_CHARGE_DECLINED,
    CARD_DECLINED,
    PUBLISHABLE_KEY,
    YEARLY,
    event,
    signed,
)
from tests.billing.kit import (
    billing_of,
    customers_of,
    next_billing,
    nothing_before,
    post_event,
    subscribe,
)

pytestmark = pytest.mark.timeout(90)

DECLINED = "Your card was declined."


async def test_subscribing_makes_the_plan_plus_and_tells_that_user_alone(
    stack: BillingStack,
) -> None:
    alice, bob = await stack.user("alice"), await stack.user("bob")
    alice_sock, bob_sock = await stack.socket(alice), await stack.socket(bob)
    before = await billing_of(alice)
    assert before == {
        "plan": "free",
        "status": "none",
        "currentPeriodEnd": None,
        "cancelAtPeriodEnd": False,
        "limits": {"maxGroupMembers": 50, "parseJobsPerDay": 100},
    }
    config = (await alice.client.get("/api/v1/billing/config")).json()
    assert config["publishableKey"] == PUBLISHABLE_KEY

    intent = await alice.post("/billing/setup-intent")
    assert intent.status_code == 200, intent.text
    assert intent.json()["clientSecret"].startswith("seti_")
    resp = await subscribe(alice, stack.stripe.card())
    assert resp.status_code == 200, resp.text
    assert resp.json()["plan"] == "plus"
    assert resp.json()["status"] == "active"
    assert resp.json()["limits"] == {"maxGroupMembers": 5000, "parseJobsPerDay": 10000}
    assert resp.json()["currentPeriodEnd"] is not None

    event = await next_billing(alice_sock)
    assert event == resp.json()
    assert await billing_of(alice) == resp.json()
    await nothing_before(bob_sock, bob, alice)
    # One Stripe customer, made on first use (the SetupIntent) and used again.
    assert len(customers_of(stack, alice)) == 1

    # Subscribing again (a retried request) changes nothing and creates nothing.
    again = await subscribe(alice, stack.stripe.card())
    assert again.json() == resp.json()
    customer = customers_of(stack, alice)[0]["id"]
    subscriptions = stack.stripe.get("/v1/subscriptions", customer=customer).json()["data"]
    assert len(subscriptions) == 1


async def test_two_subscribes_at_once_make_one_subscription(stack: BillingStack) -> None:
    """Two tabs, two cards, one click each at the same moment: one subscription at Stripe,
    and both answers say `plus` (PostgreSQL: a row lock; embedded: turns in the process)."""
    dana = await stack.user("dana")
    answers = await asyncio.gather(
        subscribe(dana, stack.stripe.card()), subscribe(dana, stack.stripe.card())
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert all(a.json()["plan"] == "plus" for a in answers)
    # The customer is created under an idempotency key, which localstripe does not keep:
    # it may hold a spare customer here, never a second subscription.
    made = [
        subscription
        for customer in customers_of(stack, dana)
        for subscription in stack.stripe.get("/v1/subscriptions", customer=customer["id"]).json()[
            "data"
        ]
    ]
    assert len(made) == 1, made


@pytest.mark.parametrize("card", [CARD_DECLINED, CARD_CHARGE_DECLINED])
async def test_a_declined_card_answers_402_with_stripes_message(
    stack: BillingStack, card: str
) -> None:
    """Declined when attached, or when the first invoice is charged: 402 with Stripe's
    message, and the caller stays on `free` with no live subscription at Stripe."""
    carl = await stack.user("carl")
    resp = await subscribe(carl, stack.stripe.card(card))
    assert resp.status_code == 402, resp.text
    assert resp.json() == {"detail": DECLINED}
    assert (await billing_of(carl))["plan"] == "free"
    customer = customers_of(stack, carl)[0]["id"]
    live = stack.stripe.get("/v1/subscriptions", customer=customer).json()["data"]
    assert [s["status"] for s in live] == []

    # A good card afterwards works.
    resp = await subscribe(carl, stack.stripe.card())
    assert resp.status_code == 200, resp.text
    assert resp.json()["plan"] == "plus"


async def test_cancel_keeps_plus_until_stripe_ends_the_subscription(stack: BillingStack) -> None:
    dana, eve = await stack.user("dana"), await stack.user("eve")
    nothing = await dana.client.delete("/api/v1/billing/subscription")
    assert nothing.status_code == 409, nothing.text

    sock = await stack.socket(dana)
    assert (await subscribe(dana, stack.stripe.card())).status_code == 200
    await next_billing(sock)
    resp = await dana.client.delete("/api/v1/billing/subscription")
    assert resp.status_code == 200, resp.text
    assert resp.json()["plan"] == "plus"
    assert resp.json()["cancelAtPeriodEnd"] is True
    assert (await next_billing(sock))["cancelAtPeriodEnd"] is True
    again = await dana.client.delete("/api/v1/billing/subscription")
    assert again.json() == resp.json()
    customer = customers_of(stack, dana)[0]["id"]
    (subscription,) = stack.stripe.get("/v1/subscriptions", customer=customer).json()["data"]
    assert subscription["cancel_at_period_end"] is True

    # The period ends: Stripe deletes the subscription, and its webhook makes the plan free.
    stack.stripe.delete(f"/v1/subscriptions/{subscription['id']}")
    ended = await next_billing(sock)
    assert (ended["plan"], ended["status"]) == ("free", "canceled")
    assert await billing_of(dana) == ended
    await nothing_before(sock, dana, eve)


async def test_a_subscription_made_at_stripe_arrives_by_webhook(stack: BillingStack) -> None:
    """Stripe is the truth: a subscription made there (its dashboard, a support agent)
    reaches the user through the webhook alone."""
    finn = await stack.user("finn")
    sock = await stack.socket(finn)
    assert (await finn.post("/billing/setup-intent")).status_code == 200
    customer = customers_of(stack, finn)[0]["id"]
    card = stack.stripe.card()
    stack.stripe.post(f"/v1/payment_methods/{card}/attach", customer=customer)
    stack.stripe.post(
        f"/v1/customers/{customer}", invoice_settings={"default_payment_method": card}
    )
    stack.stripe.post("/v1/subscriptions", customer=customer, items=[{"plan": "price_parley_plus"}])
    update = await next_billing(sock)
    assert (update["plan"], update["status"]) == ("plus", "active")
    assert await billing_of(finn) == update


async def test_a_failed_renewal_is_past_due_and_still_plus(stack: BillingStack) -> None:
    """A renewal whose charge fails: Stripe marks the subscription `past_due` and sends
    `invoice.payment_failed`; the plan stays `plus` until Stripe gives up and cancels.

    localstripe bills again when the price's interval changes (which makes the card on
    file decline, and the subscription `past_due`), but sends no `invoice.payment_failed`
    for it: the test signs that event itself, as Stripe would send it."""
    gus = await stack.user("gus")
    sock = await stack.socket(gus)
    assert (await subscribe(gus, stack.stripe.card())).status_code == 200
    await next_billing(sock)
    customer = customers_of(stack, gus)[0]["id"]
    (subscription,) = stack.stripe.get("/v1/subscriptions", customer=customer).json()["data"]

    # The card on file starts declining; Stripe bills again.
    card = stack.stripe.card(CARD_CHARGE_DECLINED)
    stack.stripe.post(f"/v1/payment_methods/{card}/attach", customer=customer)
    stack.stripe.post(
        f"/v1/customers/{customer}", invoice_settings={"default_payment_method": card}
    )
    item = subscription["items"]["data"][0]["id"]
    renewed = stack.stripe.post(
        f"/v1/subscriptions/{subscription['id']}", items=[{"id": item, "plan": YEARLY}]
    )
    assert renewed["status"] == "past_due"
    invoice = stack.stripe.get(f"/v1/invoices/{renewed['latest_invoice']}").json()
    body, signature = signed(event("invoice.payment_failed", invoice))
    resp = await post_event(stack, body, signature)
    assert resp.status_code == 200, resp.text
    overdue = await next_billing(sock)
    assert (overdue["plan"], overdue["status"]) == ("plus", "past_due")

    # Stripe's retries fail too, and it cancels the subscription (a real webhook).
    stack.stripe.delete(f"/v1/subscriptions/{subscription['id']}")
    ended = await next_billing(sock)
    assert (ended["plan"], ended["status"]) == ("free", "canceled")
