"""The billing panel: hidden while the server's billing is off (GET /billing answers 404),
and otherwise showing the plan, its status and limits, subscribing with a test card, and
cancelling, against a real server with billing on and localstripe.

Stripe's own Stripe.js cannot be loaded here (no internet): the page loads localstripe's
stand-in for it instead (PARLEY_STRIPE_JS_URL), which offers the same Card Element and
`confirmCardSetup` and talks to localstripe. What only real Stripe.js does (its iframes,
3-D Secure pages, Stripe's fraud signals) is not tested."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.billing.conftest import billing_settings, flush
from tests.billing.fakestripe import CARD_CHARGE_DECLINED, CARD_DECLINED, CARD_OK, FakeStripe
from tests.conftest import MODE, REDIS_URL, migrated_database
from tests.fixtures.workers import settings_env, start_worker
from tests.web.conftest import Pages, WebServer
from tests.web.kit import person, sign_in

pytestmark = pytest.mark.timeout(120)


def test_billing_panel_hides_itself_while_billing_is_off(
    pages: Pages, web_server: WebServer
) -> None:
    nia = person(web_server, "nia", "Nia")
    page = pages.new()
    sign_in(page, web_server, nia)
    assert page.request.get(f"{web_server.api}/billing").status == 404
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.get_by_role("link", name="Pages")).to_be_visible()
    expect(nav.get_by_role("link", name="Plan")).to_have_count(0)

    # An old bookmark of the panel lands on the chat list instead.
    page.goto(web_server.http + "/#/billing")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#billing-pane")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"#/$"))
    scripts = page.evaluate("[...document.scripts].map((s) => s.src)")
    assert all(s.startswith(web_server.http) for s in scripts), scripts


@pytest.fixture(scope="module")
def billing_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, FakeStripe]]:
    """A server with billing on against localstripe, whose stand-in for Stripe.js the page
    loads (the same Card Element and confirmCardSetup, talking to localstripe), and whose
    webhooks reach the server (a `parley worker` applies them in services mode)."""
    workdir = tmp_path_factory.mktemp("web-billing")
    stripe = FakeStripe(workdir)
    redis_url = REDIS_URL if MODE == "services" else None
    with migrated_database(tmp_path_factory) as database_url:
        flush(redis_url)
        settings = billing_settings(
            database_url,
            redis_url,
            stripe.api,
            stripe_js_url=stripe.js_url,
            job_queue_prefix=f"webbill{uuid.uuid4().hex[:8]}.",
        )
        env = settings_env(settings)
        env.update(PARLEY_AUTO_MIGRATE="false", PARLEY_LOG_FORMAT="json")
        server = WebServer(env, workdir)
        worker = None
        try:
            stripe.start()
            server.start()
            stripe.deliver_webhooks_to(f"{server.http}/hooks/stripe")
            if MODE == "services":
                worker = start_worker(settings, workdir, log_name="web-billing-worker.log")
            yield server, stripe
        finally:
            if worker is not None:
                worker.stop()
            server.stop()
            stripe.stop()
            flush(redis_url)


def open_plan(page: Page) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Plan").click()
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()


def enter_card(page: Page, number: str) -> None:
    """Type a test card into the card field (localstripe's Card Element: plain inputs)."""
    card = page.locator("#billing-card")
    for field, value in [
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "75001"),
    ]:
        card.get_by_placeholder(field).fill(value)
    page.get_by_role("button", name="Subscribe").click()


def test_subscribing_with_a_test_card_then_cancelling(
    pages: Pages, billing_web: tuple[WebServer, FakeStripe]
) -> None:
    server, stripe = billing_web
    uma = person(server, "uma", "Uma")
    page = pages.new()
    sign_in(page, server, uma)
    open_plan(page)
    facts = page.locator("#billing-facts")
    expect(facts.locator("dd")).to_have_text(["Free", "none", "50", "100"])
    scripts = page.evaluate("[...document.scripts].map((s) => s.src)")
    assert all(s.startswith(server.http) for s in scripts), "Stripe.js loads on demand only"

    page.get_by_role("button", name="Upgrade to Plus").click()
    enter_card(page, CARD_OK)
    expect(facts.locator("dt")).to_have_text(
        ["Plan", "Status", "Renews on", "Members per group", "Page fetches per day"]
    )
    expect(facts.locator("dd")).to_contain_text(["Plus", "active", "", "5000", "10000"])
    expect(page.locator("#billing-subscribe")).to_be_empty()
    scripts = page.evaluate("[...document.scripts].map((s) => s.src)")
    assert stripe.js_url in scripts

    page.get_by_role("button", name="Cancel subscription").click()
    expect(facts.locator('dd[data-fact="Ends on"]')).to_be_visible()
    expect(page.locator("#billing-note")).to_have_text(
        "Your subscription is cancelled and ends with the paid period."
    )
    expect(page.get_by_role("button", name="Cancel subscription")).to_be_hidden()

    # The paid period ends at Stripe: its webhook turns the plan back to Free, live.
    everyone = stripe.get("/v1/customers", limit=100).json()["data"]
    (customer,) = [c for c in everyone if c["metadata"].get("parley_user_id") == str(uma.id)]
    (subscription,) = stripe.get("/v1/subscriptions", customer=customer["id"]).json()["data"]
    stripe.delete(f"/v1/subscriptions/{subscription['id']}")
    expect(facts.locator('dd[data-fact="Plan"]')).to_have_text("Free")
    expect(facts.locator('dd[data-fact="Status"]')).to_have_text("canceled")
    expect(page.get_by_role("button", name="Upgrade to Plus")).to_be_visible()


@pytest.mark.parametrize("card", [CARD_DECLINED, CARD_CHARGE_DECLINED])
def test_a_declined_card_shows_stripes_message(
    pages: Pages, billing_web: tuple[WebServer, FakeStripe], card: str
) -> None:
    """Declined by Stripe while saving the card (Stripe.js says why), or when the first
    payment is charged (Parley answers 402 with Stripe's message): the reason is shown,
    with a fresh form to try another card."""
    server, _ = billing_web
    pages.allow(r"status of 402")  # the browser logs the declined request
    vic = person(server, "vic", "Vic")
    page = pages.new()
    sign_in(page, server, vic)
    open_plan(page)
    page.get_by_role("button", name="Upgrade to Plus").click()
    enter_card(page, card)
    expect(page.locator("#billing-error")).to_have_text("Your card was declined.")
    expect(page.locator('#billing-facts dd[data-fact="Plan"]')).to_have_text("Free")
    page.get_by_role("button", name="Try another card").click()
    enter_card(page, CARD_OK)
    expect(page.locator('#billing-facts dd[data-fact="Plan"]')).to_have_text("Plus")
    expect(page.locator("#billing-error")).to_have_text("")


def test_an_update_that_leaves_the_plan_free_keeps_the_card_form(
    pages: Pages, billing_web: tuple[WebServer, FakeStripe]
) -> None:
    """A `billing.updated` that arrives while someone types a card (the webhook about an
    earlier declined payment, late on a busy server) leaves the form and what was typed;
    one that makes the plan Plus replaces it. Delivered through the page's own handler."""
    server, _ = billing_web
    wes = person(server, "wes", "Wes")
    page = pages.new()
    sign_in(page, server, wes)
    open_plan(page)
    page.get_by_role("button", name="Upgrade to Plus").click()
    number = page.locator("#billing-card").get_by_placeholder("number")
    number.fill(CARD_OK)
    deliver = """async (plan) => {
        const billing = await import(new URL("js/billing.js", document.baseURI).href);
        const state = await import(new URL("js/state.js", document.baseURI).href);
        billing.onBillingUpdated({ ...state.state.billing, plan });
    }"""
    page.evaluate(deliver, "free")
    expect(page.get_by_role("button", name="Subscribe")).to_be_visible()
    expect(number).to_have_value(CARD_OK)
    page.evaluate(deliver, "plus")
    expect(page.locator('#billing-facts dd[data-fact="Plan"]')).to_have_text("Plus")
    expect(page.get_by_role("button", name="Subscribe")).to_have_count(0)
