"""The billing panel: hidden while the server's billing is off (GET /billing answers 404),
and otherwise showing the plan, its status and limits, with a working "Cancel"."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Route, expect

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


def test_billing_panel_shows_the_plan_and_cancels(pages: Pages, web_server: WebServer) -> None:
    """The billing routes are not part of this server yet, so the test answers them with the
    contract's Billing objects (Playwright routing); everything else is the real server.
    Once billing is merged, this runs against a server with a fake Stripe instead."""
    oli = person(web_server, "oli", "Oli")
    billing: dict[str, Any] = {
        "plan": "plus",
        "status": "active",
        "currentPeriodEnd": "2031-05-15T12:00:00+00:00",
        "cancelAtPeriodEnd": False,
        "limits": {"maxGroupMembers": 5000, "parseJobsPerDay": 10000},
    }
    calls: list[tuple[str, str, str | None]] = []

    def answer(route: Route) -> None:
        request = route.request
        calls.append((request.method, request.url, request.headers.get("x-csrf-token")))
        if request.method == "DELETE":
            billing["cancelAtPeriodEnd"] = True
        route.fulfill(json=billing)

    page = pages.new()
    page.route(re.compile(r".*/api/v1/billing(/subscription)?$"), answer)
    sign_in(page, web_server, oli)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Plan").click()
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()
    facts = page.locator("#billing-facts")
    expect(facts.locator("dt")).to_have_text(
        ["Plan", "Status", "Renews on", "Members per group", "Page fetches per day"]
    )
    expect(facts.locator("dd")).to_have_text(["Plus", "active", "May 15, 2031", "5000", "10000"])
    expect(page.locator("#billing-subscribe")).to_be_empty()

    page.get_by_role("button", name="Cancel subscription").click()
    expect(facts.locator('dd[data-fact="Ends on"]')).to_have_text("May 15, 2031")
    expect(page.locator("#billing-note")).to_have_text(
        "Your subscription is cancelled and ends with the paid period."
    )
    expect(page.get_by_role("button", name="Cancel subscription")).to_be_hidden()
    method, url, csrf = calls[-1]
    assert (method, url.endswith("/api/v1/billing/subscription")) == ("DELETE", True)
    assert csrf, "the cancellation is a cookie-authenticated write: it carries the CSRF token"
