"""People, chats and sign-ins for the browser tests: set up over REST, used in the page."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.client.harness import PASSWORD, rest_login, rest_register, unique
from tests.web.conftest import WebServer

TIMEOUT = 30


@dataclass
class Person:
    """A registered user, with bearer headers for REST calls made outside the page."""

    id: int
    username: str
    display_name: str
    headers: dict[str, str]


def person(server: WebServer, prefix: str, display_name: str) -> Person:
    """Register a user with a unique username."""
    username = unique(prefix)
    user = rest_register(server.http, username, displayName=display_name)
    return Person(user["id"], username, display_name, rest_login(server.http, username))


def chat(server: WebServer, owner: Person, *members: Person, title: str | None = None) -> int:
    """A chat `owner` creates: direct with one member, else a group titled `title`."""
    body: dict[str, Any] = {
        "type": "group" if title else "direct",
        "memberIds": [m.id for m in members],
    }
    if title:
        body["title"] = title
    resp = httpx.post(f"{server.api}/chats", json=body, headers=owner.headers, timeout=TIMEOUT)
    assert resp.status_code in (200, 201), resp.text
    return int(resp.json()["id"])


def post(server: WebServer, author: Person, chat_id: int, text: str) -> dict[str, Any]:
    """Send a message over REST; the Message."""
    resp = httpx.post(
        f"{server.api}/chats/{chat_id}/messages",
        json={"text": text},
        headers=author.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 201, resp.text
    message: dict[str, Any] = resp.json()
    return message


def texts(server: WebServer, reader: Person, chat_id: int) -> list[str]:
    """The texts of a chat's newest messages, oldest first, as REST lists them."""
    resp = httpx.get(
        f"{server.api}/chats/{chat_id}/messages", headers=reader.headers, timeout=TIMEOUT
    )
    assert resp.status_code == 200, resp.text
    return [m["text"] for m in reversed(resp.json()["items"])]


def sign_in(page: Page, server: WebServer, who: Person, path: str = "/") -> None:
    """Open the page and sign in through its form; returns once the live badge says so."""
    page.goto(server.http + path)
    page.get_by_label("Username").first.fill(who.username)
    page.locator("#login-password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#status")).to_have_text("live")


def chat_link(page: Page, chat_id: int) -> Any:
    """The link to a chat in the page's chat list."""
    return page.locator(f'#chat-list > li[data-chat-id="{chat_id}"] > a')


def wait_until(predicate: Any, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Poll state the page changes asynchronously on the server (no event to await there)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.1)


def assert_accessible_basics(page: Page) -> None:
    """Every visible field has a real <label>; the chat list is a list of links."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
             .filter((f) => f.offsetParent !== null && f.type !== 'hidden')
             .filter((f) => f.labels.length === 0)
             .map((f) => f.id || f.name)"""
    )
    assert unlabelled == [], f"fields without a <label>: {unlabelled}"
    structure = page.evaluate(
        """() => ({
             children: [...document.querySelectorAll('#chat-list > *')].map((n) => n.tagName),
             roles: document.querySelectorAll('#chat-list [role]').length,
             links: document.querySelectorAll('#chat-list > li > a[href]').length,
           })"""
    )
    assert set(structure["children"]) <= {"LI"}, structure
    assert structure["roles"] == 0, "no ARIA roles inside the list: its items are links"
    assert structure["links"] == len(structure["children"]), structure
