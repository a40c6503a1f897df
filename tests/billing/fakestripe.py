"""localstripe (a fake but stateful Stripe server, from PyPI) as a process a test owns.

It is started on a free port and told to deliver its webhooks to Parley's `/hooks/stripe`,
signed with a known secret. It would save its whole state to one fixed file
(/tmp/localstripe.pickle) after every change, which tests running at the same time would
share: the launcher turns that saving off (it only ever serves this test run).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.ports import free_port
from tests.fixtures.processes import ServiceProcess

SECRET_KEY = "sk_test_parley_0123456789"
PUBLISHABLE_KEY = "pk_test_parley_0123456789"
WEBHOOK_SECRET = "whsec_parley_test_0123456789"
PRICE_ID = "price_parley_plus"
YEARLY = "price_parley_plus_yearly"  # another price of the product, billed yearly
# Test cards of Stripe's documentation, as localstripe treats them.
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"  # declined when attached to a customer
CARD_CHARGE_DECLINED = "4000000000000341"  # attaches, but every charge is declined

_LAUNCH = (
    "import sys, localstripe.resources as r, localstripe.server as s;"
    "r.Store.dump_to_disk = lambda self: None;"
    "sys.argv = ['localstripe', '--from-scratch', '--port', sys.argv[1]];"
    "s.start()"
)


class FakeStripe(ServiceProcess):
    """A localstripe server: `api` is its base URL (PARLEY_STRIPE_API_BASE)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "localstripe.log")
        self.port = free_port()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def js_url(self) -> str:
        """Its stand-in for Stripe.js (the same calls, against this server)."""
        return f"{self.api}/js.stripe.com/v3/"

    def start(self) -> None:
        """Start it, wait until it answers, and create the `plus` price."""
        self._spawn([sys.executable, "-c", _LAUNCH, str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"localstripe exited:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.get("/v1/plans").status_code == 200:
                    break
            time.sleep(0.05)  # polling a readiness URL of another process
        else:
            raise RuntimeError(f"localstripe did not start:\n{self.log()}")
        self.post(
            "/v1/plans",
            id=PRICE_ID,
            amount=500,
            currency="eur",
            interval="month",
            product={"name": "Parley Plus"},
        )
        self.post(
            "/v1/plans",
            id=YEARLY,
            amount=5000,
            currency="eur",
            interval="year",
            product=self.get(f"/v1/plans/{PRICE_ID}").json()["product"],
        )

    def stop(self) -> None:
        self._terminate(signal.SIGTERM, timeout=10)

    close = stop

    def deliver_webhooks_to(self, url: str) -> None:
        """Send every event, signed with WEBHOOK_SECRET, to `url`."""
        resp = httpx.post(
            f"{self.api}/_config/webhooks/parley", json={"url": url, "secret": WEBHOOK_SECRET}
        )
        resp.raise_for_status()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", params=params, auth=(SECRET_KEY, ""), timeout=10)

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        """A call with the secret key (as Stripe's dashboard or Stripe.js would make it)."""
        resp = httpx.post(f"{self.api}{path}", json=body, auth=(SECRET_KEY, ""), timeout=10)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def attempt(self, path: str, **body: Any) -> httpx.Response:
        """A call whose answer may be an error (a declined charge)."""
        return httpx.post(f"{self.api}{path}", json=body, auth=(SECRET_KEY, ""), timeout=10)

    def delete(self, path: str) -> dict[str, Any]:
        resp = httpx.delete(f"{self.api}{path}", auth=(SECRET_KEY, ""), timeout=10)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def card(self, number: str = CARD_OK) -> str:
        """A PaymentMethod for a test card: what Stripe.js hands the page."""
        pm = self.post(
            "/v1/payment_methods",
            type="card",
            card={"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        )
        return str(pm["id"])


def event(event_type: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """A Stripe event of `event_type` about `obj` (a snapshot of a Stripe object)."""
    return {
        "id": f"evt_test_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "data": {"object": obj},
    }


def signed(
    event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> tuple[bytes, str]:
    """`event` as Stripe sends it: the body and its `Stripe-Signature` (scheme v1), signed
    at `at` (now by default)."""
    body = json.dumps(event).encode()
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return body, f"t={timestamp},v1={mac.hexdigest()}"
