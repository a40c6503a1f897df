"""Helpers of the billing tests: a user's Billing, subscribing, and reading events."""

from __future__ import annotations

from typing import Any

import httpx

from tests.billing.conftest import Api, BillingStack, Socket


async def billing_of(user: Api) -> dict[str, Any]:
    resp = await user.client.get("/api/v1/billing")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def subscribe(user: Api, payment_method: str) -> httpx.Response:
    return await user.post("/billing/subscription", json={"paymentMethodId": payment_method})


async def next_billing(sock: Socket) -> dict[str, Any]:
    frame = await sock.next_of("billing.updated")
    data: dict[str, Any] = frame["data"]
    return data


async def nothing_before(sock: Socket, user: Api, other: Api) -> None:
    """No `billing.updated` is waiting for `sock`'s user: the next event it gets, of the two
    kinds, is the `chat.created` that `other` causes now."""
    resp = await other.post(
        "/chats", json={"type": "group", "title": "probe", "memberIds": [user.id]}
    )
    assert resp.status_code == 201, resp.text
    frame = await sock.next_of("billing.updated", "chat.created")
    assert frame["type"] == "chat.created", frame


def customers_of(stack: BillingStack, user: Api) -> list[dict[str, Any]]:
    everyone = stack.stripe.get("/v1/customers", limit=100).json()["data"]
    return [c for c in everyone if c["metadata"].get("parley_user_id") == str(user.id)]


async def post_event(stack: BillingStack, body: bytes, signature: str | None) -> httpx.Response:
    """POST a webhook to the stack's `/hooks/stripe`, as Stripe does."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    async with httpx.AsyncClient(base_url=stack.http, timeout=10) as client:
        return await client.post("/hooks/stripe", content=body, headers=headers)
