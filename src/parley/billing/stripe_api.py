"""Parley's calls to Stripe, through Stripe's official library (its async methods, on httpx).

Every write carries an idempotency key, so that a retried request (ours, or the library's
own retry after a network error) never creates a second customer or subscription. Stripe's
failures become the app's errors: a declined card is 402 with Stripe's message, Stripe
unreachable (or failing) is 503, a request Stripe refuses (an unknown PaymentMethod) is 422.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import stripe
import structlog

from parley.common.errors import Invalid, PaymentRequired, Unavailable
from parley.settings import Settings

log = structlog.get_logger("parley.billing.stripe")

NETWORK_RETRIES = 2
UNREACHABLE = "Stripe cannot be reached right now, try again shortly"


@contextmanager
def _stripe_errors() -> Iterator[None]:
    """Stripe's exceptions as the app's errors (see the module docstring)."""
    try:
        yield
    except stripe.CardError as exc:
        raise PaymentRequired(exc.user_message or "the card was declined") from exc
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise Unavailable(UNREACHABLE) from exc
    except stripe.InvalidRequestError as exc:
        raise Invalid(f"Stripe refused the request: {exc.user_message}") from exc
    except stripe.StripeError as exc:  # its outage, or our key or configuration
        log.error("Stripe failed", error=f"{type(exc).__name__}: {exc.user_message}"[:300])
        raise Unavailable(UNREACHABLE) from exc


class StripeApi:
    """The Stripe calls billing makes, for one configured account and price."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.stripe_secret_key and settings.stripe_price_id):
            raise RuntimeError("billing is off: no Stripe secret key or price")
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=NETWORK_RETRIES,
        )
        self.price_id = settings.stripe_price_id

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, user_id: int, username: str) -> str:
        """A new Stripe customer for `user_id`; the same one when asked again (its key)."""
        with _stripe_errors():
            customer = await self._client.v1.customers.create_async(
                {"description": username, "metadata": {"parley_user_id": str(user_id)}},
                {"idempotency_key": f"parley-customer-{user_id}"},
            )
        return str(customer.id)

    async def create_setup_intent(self, customer_id: str) -> str:
        """The client secret of a new SetupIntent that saves a card for later payments."""
        with _stripe_errors():
            intent = await self._client.v1.setup_intents.create_async(
                {"customer": customer_id, "usage": "off_session"},
                {"idempotency_key": f"parley-setup-{uuid.uuid4().hex}"},
            )
        return str(intent.client_secret)

    async def subscribe(
        self, customer_id: str, payment_method_id: str, *, attempt_key: str
    ) -> stripe.Subscription:
        """Attach the card, make it the customer's default, and subscribe to the price.

        `attempt_key` names this attempt: the same key again returns the subscription
        created the first time. A first charge that fails answers 402 (`error_if_incomplete`:
        Stripe then creates no subscription; one that comes back `incomplete` all the same
        is cancelled, and answered with 402 and the decline message too).
        """
        with _stripe_errors():
            await self._client.v1.payment_methods.attach_async(
                payment_method_id,
                {"customer": customer_id},
                {"idempotency_key": f"parley-attach-{customer_id}-{payment_method_id}"},
            )
            await self._client.v1.customers.update_async(
                customer_id,
                {"invoice_settings": {"default_payment_method": payment_method_id}},
                {"idempotency_key": f"parley-default-{uuid.uuid4().hex}"},
            )
            subscription = await self._client.v1.subscriptions.create_async(
                {
                    "customer": customer_id,
                    # A recurring price id is accepted as the item's plan.
                    "items": [{"plan": self.price_id}],
                    "payment_behavior": "error_if_incomplete",
                },
                {"idempotency_key": f"parley-subscribe-{attempt_key}"},
            )
            if subscription.status == "incomplete":
                message = await self._decline_message(subscription)
                await self._client.v1.subscriptions.cancel_async(
                    subscription.id, options={"idempotency_key": f"parley-drop-{subscription.id}"}
                )
                raise PaymentRequired(message)
        return subscription

    async def _decline_message(self, subscription: stripe.Subscription) -> str:
        """Why the first payment of `subscription` failed, as Stripe words it: the last
        payment error of its invoice's PaymentIntent (where this API version has one)."""
        invoice_id = field(subscription, "latest_invoice")
        if isinstance(invoice_id, str):
            invoice = await self._client.v1.invoices.retrieve_async(invoice_id)
            intent_id = field(invoice, "payment_intent")
            if isinstance(intent_id, str):
                intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
                message = field(field(intent, "last_payment_error"), "message")
                if isinstance(message, str) and message:
                    return message
        return "the first payment was declined"

    async def cancel_at_period_end(self, subscription_id: str) -> stripe.Subscription:
        """Let the subscription end with its paid period."""
        with _stripe_errors():
            return await self._client.v1.subscriptions.update_async(
                subscription_id,
                {"cancel_at_period_end": True},
                {"idempotency_key": f"parley-cancel-{subscription_id}"},
            )

    async def subscriptions_of(self, customer_id: str) -> list[stripe.Subscription]:
        """Every subscription of the customer as Stripe has it now, canceled ones included."""
        with _stripe_errors():
            page = await self._client.v1.subscriptions.list_async(
                {"customer": customer_id, "status": "all", "limit": 100}
            )
        return list(page.data)


@asynccontextmanager
async def stripe_api(settings: Settings) -> AsyncIterator[StripeApi]:
    """A `StripeApi` for the duration of the block."""
    api = StripeApi(settings)
    try:
        yield api
    finally:
        await api.close()


def field(obj: Any, name: str) -> Any:
    """`obj[name]` of a Stripe object or a plain dict, None when absent."""
    try:
        return obj[name]
    except (KeyError, TypeError):
        return None
