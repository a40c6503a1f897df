"""Two people in two browsers: unread counts, editing and deleting, and the owner's delete,
each seen live by the other."""

from __future__ import annotations

import threading

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.client.harness import web_site
from tests.web.conftest import Pages, WebServer
from tests.web.kit import chat, chat_link, person, post, sign_in, texts

pytestmark = pytest.mark.timeout(120)
ARTICLE = "<!doctype html><html><head><title>Minutes of Tuesday</title></head><body>x</body></html>"


def send(page: Page, text: str) -> Locator:
    """Type and send `text` from the page's composer; the sent message's element (found by
    its id, so that it stays found when its text changes)."""
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()
    mine = page.locator(".message.mine").filter(has_text=text)
    expect(mine).to_have_count(1)
    return page.locator(f'.message[data-message-id="{mine.get_attribute("data-message-id")}"]')


def press(page: Page, target: Locator) -> None:
    """Hold the mouse button down on `target` (released by the caller)."""
    box = target.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def message(page: Page, text: str) -> Locator:
    return page.locator("#message-list .message").filter(has_text=text)


def test_edit_delete_and_the_owners_delete_live_in_two_browsers(
    pages: Pages, web_server: WebServer
) -> None:
    alice = person(web_server, "alice", "Alice Owner")
    bob = person(web_server, "bob", "Bob Member")
    chat_id = chat(web_server, alice, bob, title="Planning")
    alice_page, bob_page = pages.new(), pages.new()
    sign_in(alice_page, web_server, alice)
    sign_in(bob_page, web_server, bob)

    # Bob writes while Alice looks at the list: her unread count says it, also in words.
    chat_link(bob_page, chat_id).click()
    question = send(bob_page, "Are we meeting on Tuesday?")
    typo = send(bob_page, "Tuesday at 10, I mean")
    alice_link = chat_link(alice_page, chat_id)
    expect(alice_link.locator(".badge")).to_have_text("2")
    expect(alice_link.locator(".badge")).to_have_attribute("aria-hidden", "true")
    expect(alice_link.locator(".unread-text")).to_have_text(", 2 unread messages")
    expect(alice_page.locator("#announcer")).to_contain_text(
        "Bob Member in Planning: Tuesday at 10, I mean"
    )

    alice_link.click()
    expect(message(alice_page, "Tuesday at 10")).to_have_count(1)
    expect(alice_link.locator(".badge")).to_have_count(0)

    # Bob edits his message: Alice sees the new text, marked as edited.
    typo.get_by_role("button", name="Edit").click()
    editor = typo.get_by_label("Edit your message")
    expect(editor).to_be_focused()
    editor.fill("Tuesday at 11, I mean")
    editor.press("Enter")
    expect(typo.locator(".text")).to_have_text("Tuesday at 11, I mean")
    edited = message(alice_page, "Tuesday at 11, I mean")
    expect(edited).to_have_count(1)
    expect(edited.locator(".edited")).to_have_text("edited")
    expect(message(alice_page, "Tuesday at 10")).to_have_count(0)

    # Escape leaves an edit without changing anything.
    question.get_by_role("button", name="Edit").click()
    question.get_by_label("Edit your message").fill("never saved")
    question.get_by_label("Edit your message").press("Escape")
    expect(question.locator(".text")).to_have_text("Are we meeting on Tuesday?")

    # Bob deletes his own message (after confirming): it is gone for Alice too.
    question.get_by_role("button", name="Delete").click()
    confirm = question.get_by_role("group", name="Delete this message?")
    expect(confirm.get_by_role("button", name="Delete")).to_be_focused()
    confirm.get_by_role("button", name="Delete").click()
    expect(message(bob_page, "Are we meeting")).to_have_count(0)
    expect(message(alice_page, "Are we meeting")).to_have_count(0)

    # Alice owns the chat: she may delete Bob's messages but not edit them; Bob may not
    # touch hers.
    send(alice_page, "Owner here")
    spam = message(alice_page, "Buy cheap watches")
    send(bob_page, "Buy cheap watches")
    expect(spam).to_have_count(1)
    expect(spam.get_by_role("button", name="Edit")).to_have_count(0)
    theirs = message(bob_page, "Owner here")
    expect(theirs).to_have_count(1)
    expect(theirs.get_by_role("button")).to_have_count(0)

    spam.get_by_role("button", name="Delete").click()
    spam.get_by_role("button", name="Delete").click()  # the confirmation's button
    expect(spam).to_have_count(0)
    expect(message(bob_page, "Buy cheap watches")).to_have_count(0)

    assert texts(web_server, bob, chat_id) == ["Tuesday at 11, I mean", "Owner here"]
    for shown in (alice_page, bob_page):
        expect(shown.locator("#message-list .message")).to_have_count(2)


def test_a_click_on_a_message_being_redrawn_still_lands(page: Page, web_server: WebServer) -> None:
    """Edit pressed on a message just sent, released after its link preview arrived and
    redrew it: the click still opens the editor (the message's elements are kept)."""
    alice = person(web_server, "alice", "Alice Quick")
    bob = person(web_server, "bob", "Bob There")
    chat_id = chat(web_server, alice, bob)
    sign_in(page, web_server, alice)
    chat_link(page, chat_id).click()

    opened = threading.Event()  # the linked page answers only once this is set
    with web_site({"/minutes.html": ARTICLE}, opened=opened) as site:
        mine = send(page, f"Notes: {site}/minutes.html")
        press(page, mine.get_by_role("button", name="Edit"))
        opened.set()
        expect(mine.locator(".preview .title")).to_have_text("Minutes of Tuesday")
        page.mouse.up()
    expect(mine.get_by_label("Edit your message")).to_be_focused()


def test_a_messages_first_edit_keeps_its_buttons(page: Page, web_server: WebServer) -> None:
    """A first edit adds the "edited" mark before a message's buttons: the buttons after it
    are kept (the same elements), not rebuilt because their place in the row moved."""
    alice = person(web_server, "alice", "Alice Owner")
    bob = person(web_server, "bob", "Bob Author")
    chat_id = chat(web_server, alice, bob, title="Moderated")
    typo = post(web_server, bob, chat_id, "Teh plan")
    sign_in(page, web_server, alice)
    chat_link(page, chat_id).click()

    delete = message(page, "Teh plan").get_by_role("button", name="Delete").element_handle()
    edited = httpx.patch(
        f"{web_server.api}/messages/{typo['id']}",
        json={"text": "The plan"},
        headers=bob.headers,
        timeout=30,
    )
    assert edited.status_code == 200, edited.text
    fixed = message(page, "The plan")
    expect(fixed.locator(".edited")).to_have_text("edited")
    assert delete.evaluate("button => button.isConnected"), "the Delete button was rebuilt"
    delete.click()
    expect(fixed.get_by_role("group", name="Delete this message?")).to_be_visible()
