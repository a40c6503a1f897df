"""A phone-sized window (375 px): the chat list and a conversation are two views, with
back navigation between them, and nothing overflows or wraps where it should not."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.web.conftest import Pages, WebServer
from tests.web.kit import chat, chat_link, person, post, sign_in

pytestmark = pytest.mark.timeout(120)
PHONE: ViewportSize = {"width": 375, "height": 740}


def text_lines(page: Page, selector: str) -> int:
    """How many lines the text of the element takes on screen."""
    lines: int = page.evaluate(
        """(selector) => {
             const range = document.createRange();
             range.selectNodeContents(document.querySelector(selector));
             return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
           }""",
        selector,
    )
    return lines


def assert_fits_the_width(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"


def test_list_view_conversation_view_and_back(pages: Pages, web_server: WebServer) -> None:
    kim = person(web_server, "kim", "Kim Longname-Withaverylongsurname")
    lee = person(web_server, "lee", "Lee")
    chat_id = chat(web_server, lee, kim)
    post(web_server, lee, chat_id, "Hello from a phone-sized test")
    page = pages.new(viewport=PHONE)

    page.goto(web_server.http + "/")
    assert_fits_the_width(page)
    sign_in(page, web_server, kim)

    # The list view: the list fills the screen; no conversation, no "pick on the left".
    expect(page.get_by_role("heading", name="Chats")).to_be_visible()
    expect(chat_link(page, chat_id)).to_be_visible()
    expect(page.locator("#main-pane")).to_be_hidden()
    expect(page.get_by_text("on the left")).to_have_count(0)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert text_lines(page, "#logout-button") == 1, "“Log out” wraps"
    assert_fits_the_width(page)

    # The conversation view replaces the list, with a way back.
    chat_link(page, chat_id).click()
    expect(page.locator("#chat-pane")).to_be_visible()
    expect(page.locator(".sidebar")).to_be_hidden()
    expect(page.locator("#message-list")).to_contain_text("Hello from a phone-sized test")
    page.get_by_label("Message", exact=True).fill("Replying from my phone")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.mine .text")).to_have_text(["Replying from my phone"])
    composer = page.locator("#send-form").bounding_box()
    assert composer is not None
    assert composer["x"] + composer["width"] <= PHONE["width"]
    assert_fits_the_width(page)

    back = page.get_by_role("link", name="← Chats")
    expect(back).to_be_visible()
    back.click()
    expect(page.locator(".sidebar")).to_be_visible()
    expect(page.locator("#chat-pane")).to_be_hidden()
    expect(chat_link(page, chat_id).locator(".chat-preview")).to_have_text(
        "You: Replying from my phone"
    )

    # The browser's own back button goes from a conversation to the list as well.
    chat_link(page, chat_id).click()
    expect(page.locator("#chat-pane")).to_be_visible()
    page.go_back()
    expect(page.locator(".sidebar")).to_be_visible()
    expect(page.locator("#chat-pane")).to_be_hidden()

    # While the list is shown, new messages count as unread again.
    post(web_server, lee, chat_id, "Are you still there?")
    expect(chat_link(page, chat_id).locator(".unread-text")).to_have_text(", 1 unread message")

    # The other sections are views of their own too.
    page.get_by_role("link", name="Pages").click()
    expect(page.locator("#jobs-pane")).to_be_visible()
    expect(page.locator(".sidebar")).to_be_hidden()
    assert_fits_the_width(page)
    assert text_lines(page, "#logout-button") == 1
