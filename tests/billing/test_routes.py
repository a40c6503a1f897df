"""The billing routes' edges: 404 while billing is off, 503 while Stripe cannot be
reached (nothing changes), 422 for what Stripe refuses."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from parley.settings import Settings, UnsafeSettingsError
from tests.billing.conftest import billing_settings
from tests.fixtures.apps import running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.ports import free_port
from tests.fixtures.users import Account, register

BILLING_ROUTES = [
    ("GET", "/api/v1/billing"),
    ("GET", "/api/v1/billing/config"),
    ("POST", "/api/v1/billing/setup-intent"),
    ("POST", "/api/v1/billing/subscription"),
    ("DELETE", "/api/v1/billing/subscription"),
]


async def test_with_billing_off_the_routes_answer_404(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for method, path in BILLING_ROUTES:
        body = {"paymentMethodId": "pm_x"} if method == "POST" else None
        resp = await client.request(method, path, json=body, headers=alice.headers)
        assert resp.status_code == 404, (method, path, resp.text)
    hook = await client.post("/hooks/stripe", content=b"{}", headers={"Stripe-Signature": "x"})
    assert hook.status_code == 404
    assert "stripe" not in csp_of(await client.get("/"))


def csp_of(page: httpx.Response) -> str:
    """The Content-Security-Policy of the web page."""
    found = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]*)"', page.text)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def unreachable(database_url: str, redis_url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """Billing on, but Stripe's address answers nothing (a closed port)."""
    settings = billing_settings(database_url, redis_url, f"http://127.0.0.1:{free_port()}")
    async with running_app(settings) as app, guarded_client(app, allow={503}) as c:
        yield c


async def test_stripe_unreachable_answers_503_and_loses_nothing(
    unreachable: httpx.AsyncClient,
) -> None:
    rhea = await register(unreachable, "rhea")
    for method, path, body in [
        ("POST", "/api/v1/billing/setup-intent", None),
        ("POST", "/api/v1/billing/subscription", {"paymentMethodId": "pm_card"}),
    ]:
        resp = await unreachable.request(method, path, json=body, headers=rhea.headers)
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["Retry-After"]) >= 1
        assert "Stripe" in resp.json()["detail"]
    billing = await unreachable.get("/api/v1/billing", headers=rhea.headers)
    assert billing.json()["plan"] == "free"
    # Webhooks are stored without Stripe: acknowledged, applied once Stripe answers.
    page = await unreachable.get("/")
    assert "connect-src 'self' ws: wss: http://127.0.0.1:" in page.text


async def test_what_stripe_refuses_is_422(billing_client: httpx.AsyncClient) -> None:
    sam = await register(billing_client, "sam")
    resp = await billing_client.post(
        "/api/v1/billing/subscription",
        json={"paymentMethodId": "pm_nobody_has"},
        headers=sam.headers,
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith("Stripe refused the request")
    bad = await billing_client.post(
        "/api/v1/billing/subscription", json={"paymentMethodId": "no spaces"}, headers=sam.headers
    )
    assert bad.status_code == 422


@pytest.mark.parametrize("missing", ["stripe_webhook_secret", "stripe_price_id"])
def test_billing_needs_its_webhook_secret_and_price(missing: str) -> None:
    values = {
        "stripe_secret_key": "sk_test_x",
        "stripe_webhook_secret": "whsec_x",
        "stripe_price_id": "price_x",
    }
    values[missing] = ""
    with pytest.raises(UnsafeSettingsError, match=f"needs PARLEY_{missing.upper()} "):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert not Settings(_env_file=None, stripe_secret_key="").billing_enabled  # type: ignore[call-arg]
