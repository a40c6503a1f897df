"""`POST /hooks/stripe`: signatures, repeats, order, and the hooks process on its own;
and Schemathesis over the billing routes with billing on (tests/ops/test_schemathesis.py
covers the whole document with billing off, where they answer 404).

Here localstripe delivers no webhook: the tests send the events themselves, signed with
the webhook secret, built from localstripe's real objects, in the order they choose.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.billing.conftest import Api, BillingStack, billing_stack
from tests.billing.fakestripe import PRICE_ID, FakeStripe, event, signed
from tests.billing.kit import (
    billing_of,
    customers_of,
    next_billing,
    nothing_before,
    post_event,
    subscribe,
)
from tests.fixtures.commands import run_parley
from tests.fixtures.servers import start_server
from tests.fixtures.workers import settings_env
from tests.ops.test_schemathesis import run_schemathesis

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def stack(
    fake_stripe: FakeStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BillingStack]:
    """A billing-enabled server that gets only the webhooks the tests send."""
    with billing_stack(fake_stripe, tmp_path_factory, deliver_webhooks=False) as billing:
        yield billing


def live_subscription(stack: BillingStack, user: Api) -> dict[str, Any]:
    customer = customers_of(stack, user)[0]["id"]
    (subscription,) = stack.stripe.get("/v1/subscriptions", customer=customer).json()["data"]
    return subscription


def subscription_at_stripe(stack: BillingStack, customer: str) -> dict[str, Any]:
    """A subscription made at Stripe directly (no webhook reaches Parley here)."""
    card = stack.stripe.card()
    stack.stripe.post(f"/v1/payment_methods/{card}/attach", customer=customer)
    stack.stripe.post(
        f"/v1/customers/{customer}", invoice_settings={"default_payment_method": card}
    )
    return stack.stripe.post("/v1/subscriptions", customer=customer, items=[{"plan": PRICE_ID}])


async def test_bad_missing_and_stale_signatures_answer_400_and_change_nothing(
    stack: BillingStack,
) -> None:
    hana = await stack.user("hana")
    sock = await stack.socket(hana)
    assert (await subscribe(hana, stack.stripe.card())).status_code == 200
    await next_billing(sock)
    subscription = live_subscription(stack, hana)
    ended = stack.stripe.delete(f"/v1/subscriptions/{subscription['id']}")
    deleted = event("customer.subscription.deleted", ended)

    body, good = signed(deleted)
    _, wrong_secret = signed(deleted, secret="whsec_someone_else")
    _, stale = signed(deleted, at=int(time.time()) - 600)  # past the library's 300 s
    tampered = body.replace(b'"canceled"', b'"active"')
    for payload, signature in [
        (body, wrong_secret),
        (body, None),
        (body, stale),
        (body, "t=not-a-time,v1=00"),
        (tampered, good),
    ]:
        resp = await post_event(stack, payload, signature)
        assert resp.status_code == 400, (signature, resp.text)
        assert "Stripe-Signature" in resp.json()["detail"]
    assert (await billing_of(hana))["plan"] == "plus"

    # None of them was stored: the genuine delivery is new, and it is applied.
    resp = await post_event(stack, body, good)
    assert resp.json() == {"received": True, "duplicate": False}
    update = await next_billing(sock)
    assert (update["plan"], update["status"]) == ("free", "canceled")


async def test_the_same_event_twice_is_applied_once(stack: BillingStack) -> None:
    ivan, judy = await stack.user("ivan"), await stack.user("judy")
    sock = await stack.socket(ivan)
    assert (await ivan.post("/billing/setup-intent")).status_code == 200
    created = subscription_at_stripe(stack, customers_of(stack, ivan)[0]["id"])
    body, signature = signed(event("customer.subscription.created", created))

    first, second = await asyncio.gather(
        post_event(stack, body, signature), post_event(stack, body, signature)
    )
    assert sorted(r.json()["duplicate"] for r in (first, second)) == [False, True]
    update = await next_billing(sock)
    assert (update["plan"], update["status"]) == ("plus", "active")
    again = await post_event(stack, body, signature)
    assert again.json() == {"received": True, "duplicate": True}
    await nothing_before(sock, ivan, judy)


async def test_events_out_of_order_leave_the_newest_state(stack: BillingStack) -> None:
    """Stripe's events arrive newest first: the late, older ones (whose payloads still say
    `active`) change nothing. A late `deleted` of an earlier subscription does not end the
    one that pays now."""
    kate, leo = await stack.user("kate"), await stack.user("leo")
    sock = await stack.socket(kate)
    assert (await kate.post("/billing/setup-intent")).status_code == 200
    customer = customers_of(stack, kate)[0]["id"]
    first = subscription_at_stripe(stack, customer)
    cancelling = stack.stripe.post(f"/v1/subscriptions/{first['id']}", cancel_at_period_end=True)
    ended = stack.stripe.delete(f"/v1/subscriptions/{first['id']}")
    history = [
        event("customer.subscription.created", first),
        event("customer.subscription.updated", cancelling),
        event("customer.subscription.deleted", ended),
    ]
    for late in reversed(history):
        resp = await post_event(stack, *signed(late))
        assert resp.json()["duplicate"] is False
    update = await next_billing(sock)
    assert (update["plan"], update["status"]) == ("free", "canceled")
    await nothing_before(sock, kate, leo)

    second = subscription_at_stripe(stack, customer)
    await post_event(stack, *signed(event("invoice.paid", {"customer": customer})))
    update = await next_billing(sock)
    assert (update["plan"], update["status"]) == ("plus", "active")
    # Now the first subscription's events come in again, under new ids (Stripe resends).
    for late in history:
        resp = await post_event(stack, *signed({**late, "id": late["id"] + "x"}))
        assert resp.json()["duplicate"] is False
    await nothing_before(sock, kate, leo)
    assert (await billing_of(kate))["status"] == "active"
    assert second["status"] == "active"


async def test_events_of_others_and_of_other_kinds_are_acknowledged(stack: BillingStack) -> None:
    mia = await stack.user("mia")
    sock = await stack.socket(mia)
    stranger = stack.stripe.post("/v1/customers", description="not one of Parley's")
    for payload in [
        event("customer.subscription.created", subscription_at_stripe(stack, stranger["id"])),
        event("customer.created", stranger),
        event("invoice.paid", {"customer": None}),
    ]:
        resp = await post_event(stack, *signed(payload))
        assert resp.status_code == 200, resp.text
    await nothing_before(sock, mia, await stack.user("ned"))


@pytest.mark.services_only
async def test_the_hooks_process_answers_while_no_worker_runs(
    stack: BillingStack, tmp_path: Path
) -> None:
    """`parley hooks` acknowledges without a worker and stores the event; the worker, once it
    is started, applies it. (How fast it answers is a figure, printed, not a test: under
    load a bound on it fails for the machine, not for the code.)"""
    olga = await stack.user("olga")
    sock = await stack.socket(olga)
    assert (await subscribe(olga, stack.stripe.card())).status_code == 200
    await next_billing(sock)
    ended = stack.stripe.delete(f"/v1/subscriptions/{live_subscription(stack, olga)['id']}")

    stack.stop_worker()
    env = {**settings_env(stack.settings), "PARLEY_LOG_FORMAT": "json", "PARLEY_LOG_LEVEL": "INFO"}
    server = start_server(env, tmp_path, command="hooks")
    hooks = server.http
    try:
        health = httpx.get(f"{hooks}/hooks/health", timeout=5)  # noqa: ASYNC210
        assert health.json() == {"status": "ok", "checks": {"database": "ok"}}
        missing = httpx.get(f"{hooks}/api/v1/health/live", timeout=5)  # noqa: ASYNC210
        assert missing.status_code == 404  # the hooks only

        body, signature = signed(event("customer.subscription.deleted", ended))
        headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=hooks, timeout=10) as client:
            await client.get("/hooks/health/live")  # a warm connection, as Stripe keeps
            started = time.perf_counter()
            resp = await client.post("/hooks/stripe", content=body, headers=headers)
            took = time.perf_counter() - started
        assert resp.json() == {"received": True, "duplicate": False}
        print(f"hooks process answered in {took * 1000:.1f} ms with no worker running")
        assert (await billing_of(olga))["plan"] == "plus"  # stored, not applied

        stack.start_worker()
        update = await next_billing(sock)
        assert (update["plan"], update["status"]) == ("free", "canceled")
        assert "stripe event received" in server.log()
    finally:
        server.stop()
        if stack.worker is None:
            stack.start_worker()


def test_parley_hooks_needs_services_mode(tmp_path: Path) -> None:
    """In embedded mode `parley serve` serves /hooks itself: `parley hooks` says so."""
    result = run_parley({}, "hooks", cwd=tmp_path)
    assert result.returncode == 2
    assert "parley serve" in result.stderr


@pytest.mark.timeout(180)
async def test_schemathesis_finds_nothing_with_billing_on(stack: BillingStack) -> None:
    user = await stack.user("schemathesis")
    run_schemathesis(  # the test has nothing else to do meanwhile
        stack.http,
        user.token,
        *("--include-path-regex", "^/(api/v1/billing|hooks)"),
        *("--phases", "examples,coverage,fuzzing"),
        timeout=170,
    )
