"""The connection badge tells the truth and the page recovers by itself: the network going
away and coming back, a server that stops answering (the heartbeat), and a server restart
after which the page catches up on what it missed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.web.conftest import Pages, WebServer
from tests.web.kit import Person, chat, chat_link, person, post, sign_in, texts

pytestmark = pytest.mark.timeout(120)
# The requirement: a dead connection shows as offline within this long.
TRUTHFUL_WITHIN_MS = 30_000


def signed_in(pages: Pages, web_server: WebServer, who: Person, *, expected_errors: str) -> Page:
    """A new page where `who` has signed in; console errors matching `expected_errors` (a
    regex) are what the test provokes."""
    page = pages.new()
    pages.allow(expected_errors)
    sign_in(page, web_server, who)
    return page


def open_chat(page: Page, chat_id: int) -> None:
    chat_link(page, chat_id).click()
    expect(page.locator("#chat-pane")).to_be_visible()


def test_offline_shows_at_once_and_errors_clear_when_back(
    pages: Pages, web_server: WebServer
) -> None:
    fay = person(web_server, "fay", "Fay")
    gus = person(web_server, "gus", "Gus")
    chat_id = chat(web_server, fay, gus)
    # The browser logs ERR_INTERNET_DISCONNECTED for every try offline.
    page = signed_in(pages, web_server, fay, expected_errors=r"ERR_INTERNET_DISCONNECTED")
    open_chat(page, chat_id)

    page.context.set_offline(True)
    expect(page.locator("#status")).to_have_text("offline")
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")

    page.get_by_label("Message", exact=True).fill("Written on the train")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#send-error")).to_have_text("Cannot reach the server.")
    expect(page.locator("#net-error")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_value("Written on the train")

    # Back online: the socket is live again, and "cannot reach the server" is gone
    # everywhere without anybody touching the page.
    page.context.set_offline(False)
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#send-error")).to_have_text("")
    expect(page.locator("#net-error")).to_be_hidden()

    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.mine .text")).to_have_text(["Written on the train"])
    assert texts(web_server, gus, chat_id) == ["Written on the train"]


def test_a_late_reply_from_before_the_network_went_away_keeps_the_error(
    pages: Pages, web_server: WebServer
) -> None:
    # A request sent while online can be answered after a later one failed offline: that
    # answer says nothing about the network now, so "cannot reach the server" must stay.
    ivy = person(web_server, "ivy", "Ivy")
    jon = person(web_server, "jon", "Jon")
    chat_id = chat(web_server, ivy, jon)
    post(web_server, jon, chat_id, "Sent before the tunnel")
    page, held = open_chat_holding_its_history(pages, web_server, ivy, chat_id)

    page.context.set_offline(True)
    expect(page.locator("#status")).to_have_text("offline")
    page.get_by_label("Message", exact=True).fill("Written in the tunnel")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#send-error")).to_have_text("Cannot reach the server.")
    expect(page.locator("#net-error")).to_be_visible()
    count_flips(page, "net-error", to_hidden=True)

    # The history asked for before going offline arrives now, as the server answered it.
    assert len(held) == 1
    history = httpx.get(
        f"{web_server.api}/chats/{chat_id}/messages?limit=50", headers=ivy.headers, timeout=10
    )
    held[0].fulfill(status=200, json=history.json())
    expect(page.locator(".message .text")).to_have_text(["Sent before the tunnel"])
    expect(page.locator("#send-error")).to_have_text("Cannot reach the server.")
    assert flips(page, "net-error") == 0
    page.unroute(f"**/chats/{chat_id}/messages?*")

    page.context.set_offline(False)
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#net-error")).to_be_hidden()
    expect(page.locator("#send-error")).to_have_text("")


def test_a_late_failure_from_before_the_network_came_back_raises_no_error(
    pages: Pages, web_server: WebServer
) -> None:
    # The mirror image: a request sent before the network went away can fail after it came
    # back and the live socket reached the server again; that says nothing about now.
    kim = person(web_server, "kim", "Kim")
    lea = person(web_server, "lea", "Lea")
    chat_id = chat(web_server, kim, lea)
    page, held = open_chat_holding_its_history(pages, web_server, kim, chat_id)

    page.context.set_offline(True)
    expect(page.locator("#status")).to_have_text("offline")
    page.context.set_offline(False)
    expect(page.locator("#status")).to_have_text("live")
    count_flips(page, "net-error", to_hidden=False)

    assert len(held) == 1
    held[0].abort("internetdisconnected")
    expect(page.locator("#send-error")).to_have_text("Cannot reach the server.")
    assert flips(page, "net-error") == 0
    expect(page.locator("#net-error")).to_be_hidden()


def test_a_proxy_answering_for_a_server_it_cannot_reach_counts_as_unreachable(
    pages: Pages, web_server: WebServer
) -> None:
    # Behind a proxy, a Parley that is down or restarting answers through it: our nginx's 502
    # (with a JSON detail of its own), another proxy's 504 page, a load balancer's 503 page.
    # None is an answer from Parley: the page says what it says offline.
    mae = person(web_server, "mae", "Mae")
    ned = person(web_server, "ned", "Ned")
    chat_id = chat(web_server, mae, ned)
    # The browser logs each of the proxy's answers as an error.
    page = signed_in(pages, web_server, mae, expected_errors=r"status of 50[234]")
    open_chat(page, chat_id)
    proxy_answers = [
        {"status": 504, "content_type": "text/html", "body": "<h1>504 Gateway Time-out</h1>"},
        {"status": 503, "content_type": "text/html", "body": "<h1>503 Service Unavailable</h1>"},
        # Last, so that its error is the one left shown: our nginx's, in Parley's own shape.
        {"status": 502, "json": {"detail": "The application is unavailable; retry shortly"}},
    ]
    answered: list[int] = []

    def through_a_proxy(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        answer = proxy_answers[len(answered) % len(proxy_answers)]
        answered.append(answer["status"])
        route.fulfill(**answer)

    page.route(f"**/chats/{chat_id}/messages", through_a_proxy)
    page.get_by_label("Message", exact=True).fill("Said while it restarts")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#send-error")).to_have_text("Cannot reach the server.")
    expect(page.locator("#net-error")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_value("Said while it restarts")
    assert answered == [504, 503, 502]  # every kind met, each retried as a network failure

    # Parley is back: sending again works, and the errors are gone.
    page.unroute(f"**/chats/{chat_id}/messages", through_a_proxy)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.mine .text")).to_have_text(["Said while it restarts"])
    expect(page.locator("#send-error")).to_have_text("")
    expect(page.locator("#net-error")).to_be_hidden()
    assert texts(web_server, ned, chat_id) == ["Said while it restarts"]


def test_parleys_own_503_shows_its_detail_and_no_network_banner(
    pages: Pages, web_server: WebServer
) -> None:
    # Parley answering 503 (a dependency is down) did reach the server: its detail is shown
    # where the action failed, and "cannot reach the server" is not claimed.
    oli = person(web_server, "oli", "Oli")
    pam = person(web_server, "pam", "Pam")
    chat_id = chat(web_server, oli, pam)
    page = signed_in(pages, web_server, oli, expected_errors=r"status of 503")
    open_chat(page, chat_id)
    detail = "The database is unavailable; try again shortly."

    def with_the_database_down(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        route.fulfill(status=503, json={"detail": detail}, headers={"Retry-After": "1"})

    page.route(f"**/chats/{chat_id}/messages", with_the_database_down)
    page.get_by_label("Message", exact=True).fill("Wait for the database")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#send-error")).to_have_text(detail)
    expect(page.locator("#net-error")).to_be_hidden()
    expect(page.get_by_label("Message", exact=True)).to_have_value("Wait for the database")


def test_an_answer_cut_off_midway_counts_as_unreachable(
    pages: Pages, web_server: WebServer
) -> None:
    # A connection lost while the body is read fails there, not at the request: still the
    # network, to be said as such and cleared when the server answers again.
    quin = person(web_server, "quin", "Quin")
    rae = person(web_server, "rae", "Rae")
    chat_id = chat(web_server, quin, rae)
    # The browser logs the cut answer as ERR_CONTENT_LENGTH_MISMATCH.
    page = signed_in(pages, web_server, quin, expected_errors=r"ERR_CONTENT_LENGTH_MISMATCH")
    with cut_off_answers() as cut_url:
        page.route(f"**/chats/{chat_id}/messages?*", lambda route: route.continue_(url=cut_url))
        open_chat(page, chat_id)
        expect(page.locator("#send-error")).to_have_text("Cannot reach the server.")
        expect(page.locator("#net-error")).to_be_visible()
    page.unroute(f"**/chats/{chat_id}/messages?*")

    page.get_by_label("Message", exact=True).fill("Heard at last")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.mine .text")).to_have_text(["Heard at last"])
    expect(page.locator("#send-error")).to_have_text("")
    expect(page.locator("#net-error")).to_be_hidden()


@contextmanager
def cut_off_answers() -> Iterator[str]:
    """A loopback HTTP server whose every answer promises more body than it sends, then
    hangs up; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener was shut down: the test is over
                return
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 5000\r\nConnection: close\r\n\r\n"
                    b'{"items": [{"id": 1, "text": "The beginn'
                )

    thread = threading.Thread(target=serve, name="cut-off-answers", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/cut"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def open_chat_holding_its_history(
    pages: Pages, web_server: WebServer, who: Person, chat_id: int
) -> tuple[Page, list[Route]]:
    """Sign `who` in and open the chat, its history request held (unanswered) in the list."""
    # The browser logs ERR_INTERNET_DISCONNECTED for every try offline.
    page = signed_in(pages, web_server, who, expected_errors=r"ERR_INTERNET_DISCONNECTED")
    held: list[Route] = []
    page.route(f"**/chats/{chat_id}/messages?*", lambda route: held.append(route))
    with page.expect_request(lambda request: "/messages?" in request.url):
        chat_link(page, chat_id).click()
    return page, held


def count_flips(page: Page, element_id: str, *, to_hidden: bool) -> None:
    """From now on, count how often the element is hidden (`to_hidden`) or shown again."""
    page.evaluate(
        """([id, toHidden]) => {
          const node = document.getElementById(id);
          window.__flips = window.__flips || {};
          window.__flips[id] = 0;
          new MutationObserver(() => {
            if (node.hidden === toHidden) window.__flips[id] += 1;
          }).observe(node, { attributes: true, attributeFilter: ["hidden"] });
        }""",
        [element_id, to_hidden],
    )


def flips(page: Page, element_id: str) -> int:
    """The count `count_flips` keeps for the element."""
    return int(page.evaluate("(id) => window.__flips[id]", element_id))


def test_a_server_that_stops_answering_shows_offline_within_30_s(
    pages: Pages, web_server: WebServer
) -> None:
    hal = person(web_server, "hal", "Hal")
    page = pages.new(clock=True)
    pages.allow(r"WebSocket connection to .* failed")  # the abandoned socket
    sign_in(page, web_server, hal)
    bound = page.evaluate(
        "import('./js/live.js').then((m) => m.HEARTBEAT_EVERY_MS + m.PONG_TIMEOUT_MS)"
    )
    assert bound <= TRUTHFUL_WITHIN_MS

    # Frozen, the server keeps its sockets open but answers nothing: only the heartbeat can
    # tell. Playwright's clock runs the page's timers through `bound` at once.
    web_server.freeze()
    try:
        expect(page.locator("#status")).to_have_text("live")
        page.clock.run_for(bound + 500)
        expect(page.locator("#status")).to_have_text("offline")
    finally:
        web_server.resume()
    # The reconnection that waited on the frozen server goes through, or a new one does.
    page.clock.run_for(20_000)
    expect(page.locator("#status")).to_have_text("live")


def test_a_server_restart_the_page_reconnects_and_catches_up(
    pages: Pages, web_server: WebServer
) -> None:
    ida = person(web_server, "ida", "Ida")
    jon = person(web_server, "jon", "Jon")
    chat_id = chat(web_server, jon, ida)
    post(web_server, jon, chat_id, "Before the restart")
    page = pages.new(clock=True)
    pages.allow(r"WebSocket connection to .* failed")
    sign_in(page, web_server, ida)
    open_chat(page, chat_id)
    expect(page.locator("#message-list .message")).to_have_count(1)

    # With the page's timers paused it cannot reconnect before the test lets it: the message
    # below is sent while it is certainly disconnected.
    page.clock.pause_at(page.evaluate("Date.now()") + 100)
    web_server.stop()
    expect(page.locator("#status")).to_have_text("offline")
    web_server.start()
    post(web_server, jon, chat_id, "Sent while you were away")
    page.clock.resume()

    expect(page.locator("#status")).to_have_text("live")
    messages = page.locator("#message-list .message .text")
    expect(messages).to_have_text(["Before the restart", "Sent while you were away"])
    # The session survived the restart: writing still works.
    page.get_by_label("Message", exact=True).fill("Back again")
    page.keyboard.press("Enter")
    expect(messages).to_have_text(["Before the restart", "Sent while you were away", "Back again"])
    assert texts(web_server, jon, chat_id)[-1] == "Back again"
