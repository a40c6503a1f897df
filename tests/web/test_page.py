"""The web page in a real browser against a real server: sign in, chat, live updates."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.client.harness import PASSWORD, rest_login, rest_register, unique, web_site
from tests.servers import ServerProcess

pytestmark = pytest.mark.timeout(300)
ARTICLE = """<!doctype html><html><head><title>A very readable article</title>
<meta property="og:description" content="Worth the click.">
<meta property="og:site_name" content="Example News"></head><body>text</body></html>"""
SCREENSHOT = os.environ.get(
    "PARLEY_WEB_SCREENSHOT", str(Path(tempfile.gettempdir()) / "parley-web.png")
)


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


def sign_in(page: Page, server: ServerProcess, username: str) -> None:
    """Open the page and sign in through its form."""
    page.goto(server.http + "/")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#status")).to_have_text("live")


def test_sign_in_chat_and_see_live_messages(page: Page, web_server: ServerProcess) -> None:
    api = f"{web_server.http}/api/v1"
    alice_name, bob_name = unique("alice"), unique("bob")
    alice = rest_register(web_server.http, alice_name, displayName="Alice Page")
    rest_register(web_server.http, bob_name, displayName="Bob Rest")
    bob = rest_login(web_server.http, bob_name)
    chat = httpx.post(
        f"{api}/chats", json={"type": "direct", "memberIds": [alice["id"]]}, headers=bob, timeout=30
    ).json()
    chat_id = chat["id"]
    sent = httpx.post(
        f"{api}/chats/{chat_id}/messages",
        json={"text": "Hi Alice, are you there?"},
        headers=bob,
        timeout=30,
    )
    assert sent.status_code == 201, sent.text

    sign_in(page, web_server, alice_name)
    item = page.locator(f'.chat-item[data-chat-id="{chat_id}"]')
    expect(item.locator(".chat-name")).to_have_text("Bob Rest")
    expect(item.locator(".badge")).to_have_text("1")

    item.click()
    messages = page.locator("#message-list")
    expect(messages).to_contain_text("Hi Alice, are you there?")
    expect(page.locator("#chat-title")).to_have_text("Bob Rest")
    expect(item.locator(".badge")).to_have_count(0)

    with connect(web_server.ws, additional_headers=bob, open_timeout=30) as ws:
        # Typing in the page tells the other member.
        page.locator("#message-input").press_sequentially("Yes! Sent from the page")
        wait_for_frame(ws, {"type": "typing", "data": {"chatId": chat_id, "userId": alice["id"]}})
        page.click("#send-button")
        expect(page.locator(".message.mine")).to_contain_text("Yes! Sent from the page")
        created = wait_for_frame(ws, {"type": "message.created", "data": {"chatId": chat_id}})
        assert created["data"]["text"] == "Yes! Sent from the page"
        assert created["data"]["clientId"], "the page sends a clientId so retries are safe"

        # The other member's typing and messages show up live.
        ws.send(json.dumps({"type": "typing", "chatId": chat_id}))
        expect(page.locator("#typing")).to_have_text("Bob Rest is typing…")

    with web_site({"/article.html": ARTICLE}) as site:
        live = httpx.post(
            f"{api}/chats/{chat_id}/messages",
            json={"text": f"Live from REST, line one\nand a link: {site}/article.html"},
            headers=bob,
            timeout=30,
        )
        assert live.status_code == 201, live.text
        last = messages.locator(".message").last
        expect(last).to_contain_text("Live from REST, line one")
        expect(page.locator("#typing")).to_have_text("")
        # The link preview arrives with message.updated once the background job has run.
        expect(last.locator(".preview .title")).to_have_text("A very readable article")
        expect(last.locator(".preview .description")).to_have_text("Worth the click.")
        expect(last.locator(".text a")).to_have_attribute("href", f"{site}/article.html")
    assert page.locator(".message.mine").count() == 1

    # The open chat was marked read as messages arrived.
    alice_headers = rest_login(web_server.http, alice_name)
    deadline = time.monotonic() + 20
    while True:
        chats = httpx.get(f"{api}/chats", headers=alice_headers, timeout=30).json()["items"]
        unread = next(c["unreadCount"] for c in chats if c["id"] == chat_id)
        if unread == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # polling the REST state the page changes asynchronously
    assert unread == 0

    page.screenshot(path=SCREENSHOT)

    page.click("#logout-button")
    expect(page.locator("#login-form")).to_be_visible()
    me = page.request.get(f"{api}/users/me")
    assert me.status == 401, "logging out ended the cookie session"

    # The same page, another account: nothing of the first one is left on screen.
    page.fill("#login-username", bob_name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#me-name")).to_contain_text(f"@{bob_name}")
    expect(item.locator(".chat-name")).to_have_text("Alice Page")
    expect(page.locator("#chat-pane")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("live")


def test_register_new_chat_and_load_older(page: Page, web_server: ServerProcess) -> None:
    api = f"{web_server.http}/api/v1"
    carol_name, dave_name = unique("carol"), unique("dave")
    rest_register(web_server.http, dave_name)
    dave = rest_login(web_server.http, dave_name)

    page.goto(web_server.http + "/")
    page.fill("#register-username", carol_name)
    page.fill("#register-display-name", "Carol")
    page.fill("#register-password", PASSWORD)
    page.click("#register-form button[type=submit]")
    expect(page.locator("#me-name")).to_contain_text(f"@{carol_name}")
    expect(page.locator("#chat-list-empty")).to_be_visible()

    page.click("#new-chat-toggle")
    page.check("#new-chat-form input[value=group]")
    page.fill("#new-chat-title", "Book club")
    page.fill("#new-chat-members", dave_name)
    page.click("#new-chat-form button[type=submit]")
    expect(page.locator("#chat-title")).to_have_text("Book club")
    chat_id = int(page.locator(".chat-item.active").get_attribute("data-chat-id") or 0)

    for n in range(35):
        httpx.post(
            f"{api}/chats/{chat_id}/messages",
            json={"text": f"page fill {n}"},
            headers=dave,
            timeout=30,
        ).raise_for_status()
    expect(page.locator("#message-list .message")).to_have_count(35)

    page.reload()  # the CSRF token lived in memory: sign in again, then history is paged
    expect(page.locator("#login-username")).to_have_value(carol_name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.locator(f'.chat-item[data-chat-id="{chat_id}"]').click()
    expect(page.locator("#message-list .message")).to_have_count(30)
    expect(page.locator("#message-list .message").first).to_contain_text("page fill 5")
    page.click("#load-older")
    expect(page.locator("#message-list .message")).to_have_count(35)
    expect(page.locator("#message-list .message").first).to_contain_text("page fill 0")
    expect(page.locator("#load-older")).to_be_hidden()

    bad = page.request.post(f"{api}/chats/{chat_id}/messages", data={"text": "no csrf header"})
    assert bad.status == 403, "cookie-authenticated writes need the X-CSRF-Token header"
