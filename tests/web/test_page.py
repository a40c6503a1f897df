"""The web page in a real browser against a real server: sign in, chat, live updates, a
reload that keeps the session, and the page's accessibility basics."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import APIResponse, Page, Request, Route, WebSocketRoute, expect
from websockets.sync.client import ClientConnection, connect

from tests.client.harness import PASSWORD, unique, web_site
from tests.web.conftest import Pages, WebServer
from tests.web.kit import (
    assert_accessible_basics,
    chat,
    chat_link,
    person,
    post,
    sign_in,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
CHAT_LIST = re.compile(r".*/api/v1/chats\?limit=100$")  # the request that lists the chats
ARTICLE = """<!doctype html><html><head><title>A very readable article</title>
<meta property="og:description" content="Worth the click.">
<meta property="og:site_name" content="Example News"></head><body>text</body></html>"""


def wait_for_frame(ws: ClientConnection, wanted: dict[str, Any], timeout: float = 20) -> Any:
    """The first event frame whose type and data match `wanted`."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            frame = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        except TimeoutError:
            break
        seen.append(frame)
        data = frame.get("data") or {}
        if frame.get("type") == wanted["type"] and all(
            data.get(k) == v for k, v in wanted.get("data", {}).items()
        ):
            return frame
    raise AssertionError(f"no {wanted} within {timeout}s; saw {seen}")


def test_sign_in_chat_and_see_live_messages(page: Page, web_server: WebServer) -> None:
    alice = person(web_server, "alice", "Alice Page")
    bob = person(web_server, "bob", "Bob Rest")
    chat_id = chat(web_server, bob, alice)
    post(web_server, bob, chat_id, "Hi Alice, are you there?")

    sign_in(page, web_server, alice)
    link = chat_link(page, chat_id)
    expect(link.locator(".chat-name")).to_have_text("Bob Rest")
    expect(link.locator(".badge")).to_have_text("1")
    expect(link.locator(".unread-text")).to_have_text(", 1 unread message")
    # What a screen reader says for the link: the name, then the count in words.
    expect(
        page.get_by_role("link", name=re.compile(r"^Bob Rest\W+1 unread message\b"))
    ).to_be_visible()
    expect(page.locator("#no-chat")).to_have_text(
        "Choose a chat from the list, or start one with “+ New”."
    )
    # Billing is off on this server: GET /billing answers 404 and the panel hides itself.
    expect(page.locator("#billing-nav")).to_be_hidden()
    assert_accessible_basics(page)

    link.click()
    messages = page.locator("#message-list")
    expect(messages).to_contain_text("Hi Alice, are you there?")
    expect(page.locator("#chat-title")).to_have_text("Bob Rest")
    expect(link.locator(".badge")).to_have_count(0)
    expect(link).to_have_attribute("aria-current", "true")
    assert page.url.endswith(f"#/chat/{chat_id}")
    assert_accessible_basics(page)

    with connect(web_server.ws, additional_headers=bob.headers, open_timeout=30) as ws:
        # Typing in the page tells the other member.
        page.get_by_label("Message", exact=True).press_sequentially("Yes! Sent from the page")
        wait_for_frame(ws, {"type": "typing", "data": {"chatId": chat_id, "userId": alice.id}})
        page.click("#send-button")
        expect(page.locator(".message.mine")).to_contain_text("Yes! Sent from the page")
        created = wait_for_frame(ws, {"type": "message.created", "data": {"chatId": chat_id}})
        assert created["data"]["text"] == "Yes! Sent from the page"
        assert created["data"]["clientId"], "the page sends a clientId so retries are safe"

        # The other member's typing and messages show up live.
        ws.send(json.dumps({"type": "typing", "chatId": chat_id}))
        expect(page.locator("#typing")).to_have_text("Bob Rest is typing…")

    with web_site({"/article.html": ARTICLE}) as site:
        post(web_server, bob, chat_id, f"Live from REST, line one\nand a link: {site}/article.html")
        last = messages.locator(".message").last
        expect(last).to_contain_text("Live from REST, line one")
        expect(page.locator("#typing")).to_have_text("")
        # Screen readers hear it: the polite live region says who wrote what.
        expect(page.locator("#announcer")).to_contain_text("Bob Rest: Live from REST, line one")
        # The link preview arrives with message.updated once the background job has run.
        expect(last.locator(".preview .title")).to_have_text("A very readable article")
        expect(last.locator(".preview .description")).to_have_text("Worth the click.")
        expect(last.locator(".text a")).to_have_attribute("href", f"{site}/article.html")
    assert page.locator(".message.mine").count() == 1

    # The open chat was marked read as messages arrived.
    def unread() -> int:
        items = httpx.get(f"{web_server.api}/chats", headers=alice.headers, timeout=30).json()
        return int(next(c["unreadCount"] for c in items["items"] if c["id"] == chat_id))

    wait_until(lambda: unread() == 0, what="the page marking the chat read")

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login-form")).to_be_visible()
    me = page.request.get(f"{web_server.api}/auth/session")
    assert me.status == 401, "logging out ended the cookie session"

    # The same page, another account: nothing of the first one is left on screen.
    page.fill("#login-username", bob.username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#me-name")).to_contain_text(f"@{bob.username}")
    expect(link.locator(".chat-name")).to_have_text("Alice Page")
    expect(page.locator("#chat-pane")).to_be_hidden()
    expect(page.locator("#message-list .message")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("live")


def test_the_chat_list_updates_in_place_so_a_click_is_never_lost(
    page: Page, web_server: WebServer
) -> None:
    """An event redraws the list: items keep their elements, and an unchanged item is not
    touched (a rebuilt list swallows a click whose press and release straddle a redraw)."""
    alice = person(web_server, "alice", "Alice Place")
    bob = person(web_server, "bob", "Bob Busy")
    carol = person(web_server, "carol", "Carol Calm")
    busy = chat(web_server, bob, alice)
    post(web_server, bob, busy, "First from Bob")
    calm = chat(web_server, carol, alice)
    post(web_server, carol, calm, "Only from Carol")

    sign_in(page, web_server, alice)
    items = page.locator("#chat-list > li")
    expect(items).to_have_count(2)
    expect(items.first).to_have_attribute("data-chat-id", str(calm))
    busy_link = chat_link(page, busy).element_handle()
    calm_preview = chat_link(page, calm).locator(".chat-preview").element_handle()

    post(web_server, bob, busy, "Second from Bob")
    expect(chat_link(page, busy).locator(".chat-preview")).to_have_text("Bob Busy: Second from Bob")
    expect(chat_link(page, busy).locator(".badge")).to_have_text("2")
    expect(items.first).to_have_attribute("data-chat-id", str(busy))
    assert busy_link.evaluate("link => link.isConnected"), "the changed item's link was replaced"
    assert calm_preview.evaluate("span => span.isConnected"), "an unchanged item was redrawn"
    expect(items).to_have_count(2)

    busy_link.click()
    expect(page.locator("#chat-title")).to_have_text("Bob Busy")
    expect(page.locator("#message-list")).to_contain_text("Second from Bob")


def test_a_click_on_the_item_being_redrawn_still_opens_it(
    page: Page, web_server: WebServer
) -> None:
    """A busy chat's item changes under the pointer: pressed on its preview, released after
    a new message redrew that preview, the click still opens the chat (the item's elements
    are kept and only their text changes)."""
    alice = person(web_server, "alice", "Alice Press")
    bob = person(web_server, "bob", "Bob Busy")
    busy = chat(web_server, bob, alice)
    post(web_server, bob, busy, "First from Bob")

    sign_in(page, web_server, alice)
    items = page.locator("#chat-list > li")
    expect(items.first).to_have_attribute("data-chat-id", str(busy))
    preview = chat_link(page, busy).locator(".chat-preview")
    box = preview.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 5, box["y"] + box["height"] / 2)
    page.mouse.down()
    post(web_server, bob, busy, "Second from Bob")
    expect(preview).to_have_text("Bob Busy: Second from Bob")
    expect(chat_link(page, busy).locator(".badge")).to_have_text("2")
    page.mouse.up()
    expect(page.locator("#chat-title")).to_have_text("Bob Busy")
    expect(page.locator("#message-list")).to_contain_text("Second from Bob")


def test_a_list_read_before_a_change_and_answered_after_its_event_is_fetched_again(
    page: Page, web_server: WebServer
) -> None:
    """The chat list the page fetches once live (`ready`) can be read by the server just
    before a message whose event reaches the page before the list does. Shown as it came,
    that list would put the old preview and count back for good; the page fetches it
    again instead. (The race is made certain: the list's answer is held until the event
    has been shown.)"""
    alice = person(web_server, "alice", "Alice Race")
    bob = person(web_server, "bob", "Bob Race")
    busy = chat(web_server, bob, alice)
    post(web_server, bob, busy, "First from Bob")
    held: list[tuple[Route, APIResponse]] = []
    seen = 0

    def hold_the_second_list(route: Route) -> None:
        nonlocal seen
        seen += 1
        if seen != 2:  # the sign-in's list, and any after the held one, go through
            route.continue_()
            return
        held.append((route, route.fetch()))  # read by the server now, before the message
        post(web_server, bob, busy, "Second from Bob")

    page.route(CHAT_LIST, hold_the_second_list)
    sign_in(page, web_server, alice)
    preview = chat_link(page, busy).locator(".chat-preview")
    expect(preview).to_have_text("Bob Race: Second from Bob")  # the live event, shown
    expect(chat_link(page, busy).locator(".badge")).to_have_text("2")
    assert len(held) == 1

    route, stale = held[0]
    with page.expect_request(CHAT_LIST) as fetched_again:  # no request is made without the fix
        route.fulfill(response=stale)
    answer = fetched_again.value.response()
    assert answer is not None
    assert answer.ok
    expect(preview).to_have_text("Bob Race: Second from Bob")
    expect(chat_link(page, busy).locator(".badge")).to_have_text("2")


def test_message_events_that_come_out_of_order_are_each_counted_once(
    page: Page, web_server: WebServer
) -> None:
    """Two sends in one chat through two server processes can reach a member's log in
    either order. The page counts each message once whatever the order: here the second
    message's event is held back until the third's has been delivered."""
    alice = person(web_server, "alice", "Alice Order")
    bob = person(web_server, "bob", "Bob Order")
    busy = chat(web_server, bob, alice)
    post(web_server, bob, busy, "First from Bob")
    held: list[str | bytes] = []

    def swap_second_and_third(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            text = (frame.get("data") or {}).get("text")
            if frame.get("type") == "message.created" and text == "Second from Bob":
                held.append(message)
                return
            ws.send(message)
            if frame.get("type") == "message.created" and text == "Third from Bob":
                ws.send(held.pop())

        server.on_message(from_server)

    page.route_web_socket(re.compile(r".*/ws(\?.*)?$"), swap_second_and_third)
    listed = 0

    def second_list(request: Request) -> bool:
        nonlocal listed
        if CHAT_LIST.match(request.url):
            listed += 1
        return listed == 2

    # Signing in lists the chats twice (the second once live): both are read before the
    # messages are sent, so their counts come from the events alone.
    with page.expect_event("requestfinished", second_list):
        sign_in(page, web_server, alice)
    badge = chat_link(page, busy).locator(".badge")
    expect(badge).to_have_text("1")
    post(web_server, bob, busy, "Second from Bob")
    post(web_server, bob, busy, "Third from Bob")
    expect(chat_link(page, busy).locator(".chat-preview")).to_have_text("Bob Order: Third from Bob")
    assert not held, "the second message's event was sent right after the third's"
    expect(badge).to_have_text("3")
    expect(page.locator("#announcer")).to_contain_text("Bob Order: Second from Bob")


def test_an_unread_message_deleted_leaves_the_count(page: Page, web_server: WebServer) -> None:
    """Bob deletes one of his two unread messages, not the newest: Alice's badge drops."""
    alice = person(web_server, "alice", "Alice Count")
    bob = person(web_server, "bob", "Bob Regret")
    busy = chat(web_server, bob, alice)
    regretted = post(web_server, bob, busy, "Something rash")
    post(web_server, bob, busy, "Something calm")
    sign_in(page, web_server, alice)
    badge = chat_link(page, busy).locator(".badge")
    expect(badge).to_have_text("2")
    gone = httpx.delete(
        f"{web_server.api}/messages/{regretted['id']}", headers=bob.headers, timeout=30
    )
    assert gone.status_code == 204, gone.text
    expect(badge).to_have_text("1")


def test_logging_out_in_one_window_signs_the_others_out(
    pages: Pages, web_server: WebServer
) -> None:
    erin = person(web_server, "erin", "Erin")
    first = pages.new()
    sign_in(first, web_server, erin)
    # A second window with the same session cookie. In a context of its own, so that no
    # visibility change of a shared window makes it send a request (and hear the 401).
    second = pages.new()
    second.context.add_cookies(first.context.cookies())
    second.goto(web_server.http + "/")
    expect(second.locator("#status")).to_have_text("live")

    # A request either window has under way when the session ends is refused (401).
    pages.allow(r"status of 401 .*/api/v1/")
    first.get_by_role("button", name="Log out").click()
    expect(first.locator("#auth-view")).to_be_visible()
    # The other tab makes no request of its own: its socket is closed by the server.
    expect(second.locator("#auth-view")).to_be_visible()
    expect(second.locator("#login-error")).to_contain_text("session has ended")


def test_register_new_chat_and_a_reload_keeps_the_session(
    page: Page, web_server: WebServer
) -> None:
    dave = person(web_server, "dave", "Dave")
    carol_name = unique("carol")

    page.goto(web_server.http + "/")
    expect(page.locator("#auth-view")).to_be_visible()
    assert_accessible_basics(page)
    page.fill("#register-username", carol_name)
    page.get_by_label("Display name (optional)").fill("Carol")
    page.fill("#register-password", PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#me-name")).to_contain_text(f"@{carol_name}")
    expect(page.locator("#chat-list-empty")).to_be_visible()

    page.get_by_role("button", name="+ New").click()
    page.get_by_label("Group", exact=True).check()
    page.get_by_label("Group title").fill("Book club")
    page.get_by_label("Members (usernames, separated by commas)").fill(dave.username)
    assert_accessible_basics(page)
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator("#chat-title")).to_have_text("Book club")
    chat_id = int(page.locator(".chat-item.active").get_attribute("data-chat-id") or 0)

    for n in range(35):
        post(web_server, dave, chat_id, f"page fill {n}")
    expect(page.locator("#message-list .message")).to_have_count(35)

    # A reload asks the server for the session behind the cookie: still signed in, on the
    # same chat, and writes still carry a valid CSRF token.
    page.reload()
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#auth-view")).to_be_hidden()
    expect(page.locator("#me-name")).to_contain_text(f"@{carol_name}")
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#chat-title")).to_have_text("Book club")
    expect(page.locator("#message-list .message")).to_have_count(30)
    expect(page.locator("#message-list .message").first).to_contain_text("page fill 5")
    page.click("#load-older")
    expect(page.locator("#message-list .message")).to_have_count(35)
    expect(page.locator("#message-list .message").first).to_contain_text("page fill 0")
    expect(page.locator("#load-older")).to_be_hidden()

    page.get_by_label("Message", exact=True).fill("Still signed in after a reload")
    page.keyboard.press("Enter")
    expect(page.locator(".message.mine")).to_contain_text("Still signed in after a reload")
    expect(page.locator("#send-error")).to_have_text("")

    bad = page.request.post(f"{web_server.api}/chats/{chat_id}/messages", data={"text": "x"})
    assert bad.status == 403, "cookie-authenticated writes need the X-CSRF-Token header"
