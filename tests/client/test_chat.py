"""`parley client chat` in a pseudo-terminal against a real server: what a person sees.

Other people act over plain HTTP and WebSocket. The server gives access tokens a lifetime
of a few seconds, so the session has to renew its token to get through these tests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.client.harness import (
    PASSWORD,
    ClientUser,
    Deployment,
    Relay,
    RestUser,
    client_command,
    client_env,
    deployment,
    unique,
    web_site,
)
from tests.client.terminal import Terminal
from tests.conftest import MODE

pytestmark = pytest.mark.timeout(300)

ACCESS_TOKEN_SECONDS = 3
UP = "\x1b[A"

PAGE = """<!doctype html><html><head><title>Harbour news</title>
<meta name="description" content="Boats came in."></head><body>ok</body></html>"""


@pytest.fixture(scope="module")
def chat_server(
    client_server: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A server process of its own (the last test restarts it) with short-lived access
    tokens; in services mode a second process of the client tests' deployment."""
    with deployment(
        tmp_path_factory.mktemp("chat-server"),
        joining=client_server,
        PARLEY_ACCESS_TOKEN_TTL_SECONDS=str(ACCESS_TOKEN_SECONDS),
    ) as running:
        yield running


@dataclass
class People:
    """Bob at the terminal; Alice over HTTP."""

    bob: ClientUser
    alice: RestUser

    def bob_id(self) -> int:
        """Bob's user id."""
        found = self.alice.call("GET", f"/users?query={self.bob.username}")
        user_id: int = found["items"][0]["id"]
        return user_id


@pytest.fixture
def people(chat_server: Deployment, tmp_path: Path) -> People:
    bob = ClientUser(unique("bob"), tmp_path / "bob.json", chat_server.http)
    bob.sign_up()
    return People(bob, RestUser(chat_server.http, unique("alice")))


@pytest.fixture
def open_terminal() -> Iterator[Callable[..., Terminal]]:
    """Starts `parley client chat ARGS` in a pty for a user; killed after the test if still up."""
    started: list[Terminal] = []

    def start(user: ClientUser, *args: str) -> Terminal:
        env = {**client_env(user.config, user.server), "TERM": "xterm"}
        terminal = Terminal(client_command("chat", *args), env)
        started.append(terminal)
        terminal.wait_for_text("* connected to ")
        terminal.wait_for_text("/help lists the commands")
        return terminal

    yield start
    for terminal in started:
        terminal.close()


def shown_once(terminal: Terminal, text: str) -> bool:
    """Whether exactly one line of the transcript holds `text`."""
    return sum(text in line for line in terminal.transcript()) == 1


def message_row(message: dict[str, Any], author: str) -> Callable[[str], bool]:
    """Matches the line of a message: `#id HH:MM author: text`."""
    return lambda line: (
        line.startswith(f"#{message['id']} ") and line.endswith(f" {author}: {message['text']}")
    )


def typed_line_intact(terminal: Terminal, prompt: str, typed: str, above: str) -> bool:
    """The cursor's row shows `prompt` + `typed`, and `above` is on a row above it."""
    rows = terminal.lines()
    cursor = terminal.screen.cursor.y
    return rows[cursor] == prompt + typed and any(above in row for row in rows[:cursor])


def frames_until(ws: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> None:
    """Read frames from `ws` until one matches (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        frame = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if wanted(frame):
            return


def wait_until_refused(server: str, token: str) -> None:
    """Poll the server until it refuses `token` (it expires after ACCESS_TOKEN_SECONDS)."""
    deadline = time.monotonic() + ACCESS_TOKEN_SECONDS + 30
    headers = {"Authorization": f"Bearer {token}"}
    while httpx.get(f"{server}/api/v1/users/me", headers=headers, timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "the access token never expired"
        time.sleep(0.2)  # the server's clock, not an event, decides


def test_live_events_print_above_the_line_being_typed(
    people: People, open_terminal: Callable[..., Terminal]
) -> None:
    alice, bob = people.alice, people.bob
    bob_id = people.bob_id()
    direct = alice.call("POST", "/chats", {"type": "direct", "memberIds": [bob_id]}, status=201)
    group = alice.call(
        "POST", "/chats", {"type": "group", "title": "Crew", "memberIds": [bob_id]}, status=201
    )
    hello = alice.post(direct["id"], "hi bob")
    alice.post(group["id"], "welcome aboard")

    term = open_terminal(bob)
    rows = {line.split()[0]: line.split() for line in term.transcript() if line[:6].strip()}
    assert rows[str(direct["id"])][1:4] == ["direct", "1", alice.username], "unread counts"
    assert rows[str(group["id"])][1:4] == ["group", "1", "Crew"]

    term.enter(f"/join {alice.username}")
    term.wait_for_line(message_row(hello, alice.username), "the history of the direct chat")
    prompt = f"{alice.username}> "

    with connect(alice.websocket_url()) as alice_ws:
        term.wait_for_text(f"* {alice.username} is online")
        term.type("half typed")
        term.wait_for(lambda t: t.cursor_row() == prompt + "half typed", "the typed text")

        alice_ws.send(json.dumps({"type": "typing", "chatId": direct["id"]}))
        term.wait_for(
            lambda t: typed_line_intact(t, prompt, "half typed", f"{alice.username} is typing"),
            "typing above an intact line",
        )
        live = alice.post(direct["id"], "live one")
        term.wait_for(
            lambda t: typed_line_intact(t, prompt, "half typed", f"{alice.username}: live one"),
            "a live message above an intact line",
        )
        alice.post(group["id"], "crew news")
        term.wait_for(
            lambda t: typed_line_intact(t, prompt, "half typed", "[Crew] #"),
            "another chat's message above an intact line",
        )
        assert term.wait_for_line(lambda line: "crew news" in line, "").endswith(
            f"{alice.username}: crew news"
        )
        frames_until(
            alice_ws,
            lambda f: (
                f.get("type") == "typing"
                and f["data"] == {"chatId": direct["id"], "userId": bob_id}
            ),
        )

        term.enter(" line")
        term.wait_for_text(f"{bob.username}: half typed line")
        sent = alice.call("GET", f"/chats/{direct['id']}/messages")["items"][0]
        assert sent["text"] == "half typed line"
        term.wait_for_line(message_row(sent, bob.username), "bob's own message")
        term.wait_for(lambda t: t.cursor_row() == prompt.rstrip(), "an empty prompt after sending")
        assert shown_once(term, f"{alice.username}: {live['text']}")
        assert shown_once(term, f"{bob.username}: half typed line"), "the echo is not shown again"

    # Alice's socket closed; she comes back at once, then leaves for good.
    with connect(alice.websocket_url()):
        pass
    term.wait_for_text(f"* {alice.username} is offline", timeout=30)
    presence = [line for line in term.transcript() if line.endswith(("is online", "is offline"))]
    assert presence == [f"* {alice.username} is online", f"* {alice.username} is offline"], (
        "a reconnect within seconds is not a flap"
    )

    term.ctrl("d")
    assert term.wait_exit() == 0


def test_slash_commands(
    people: People, open_terminal: Callable[..., Terminal], chat_server: Deployment
) -> None:
    alice, bob = people.alice, people.bob
    carol = RestUser(chat_server.http, unique("carol"))
    bob_id = people.bob_id()
    group = alice.call(
        "POST", "/chats", {"type": "group", "title": "Crew", "memberIds": [bob_id]}, status=201
    )
    hers = alice.post(group["id"], "hello crew")
    spare = alice.post(group["id"], "short lived")
    term = open_terminal(bob)

    term.enter("/help")
    for usage in (
        "/join <chat",
        "/edit <message-id> <text>",
        "/delete <message-id>",
        "/add <username>",
        "/parse <URL>",
        "/chats",
        "/quit",
    ):
        term.wait_for_text(usage)

    term.enter("/join crew")
    term.wait_for_line(message_row(hers, alice.username), "the group's history")
    term.enter("tpyo")
    line = term.wait_for_line(lambda line: line.endswith(f"{bob.username}: tpyo"), "bob's message")
    # The row may share its line with the prompt ("Crew> #8 ..."), printed before the prompt
    # was cleared: its id is the first "#<digits>".
    found = re.search(r"#(\d+) ", line)
    assert found, line
    mine = found.group(1)

    term.enter(f"/edit {mine} typo")
    term.wait_for_text(f"#{mine} edited by {bob.username}: typo")
    assert alice.call("GET", f"/chats/{group['id']}/messages")["items"][0]["text"] == "typo"
    alice.call("PATCH", f"/messages/{hers['id']}", {"text": "hello, crew"})
    term.wait_for_text(f"#{hers['id']} edited by {alice.username}: hello, crew")

    term.enter(f"/edit {hers['id']} not mine")
    term.wait_for_line(lambda line: line.startswith("! 403 "), "a refused edit")
    term.enter(f"/delete #{mine}")
    term.wait_for_text(f"#{mine} deleted")
    alice.call("DELETE", f"/messages/{spare['id']}", status=204)
    term.wait_for_text(f"#{spare['id']} deleted")
    assert shown_once(term, f"#{mine} deleted"), "the answer and the event show once"
    assert shown_once(term, f"#{mine} edited by")
    texts = [m["text"] for m in alice.call("GET", f"/chats/{group['id']}/messages")["items"]]
    assert texts == ["hello, crew"]

    term.enter(f"/add {carol.username}")
    term.wait_for_text(f"* [Crew] {carol.username} joined")
    members = alice.call("GET", f"/chats/{group['id']}")["members"]
    assert carol.username in {m["username"] for m in members}
    assert shown_once(term, f"{carol.username} joined"), "the answer and the event show once"

    with web_site({"/news.html": PAGE}) as site:
        term.enter(f"/parse {site}/news.html")
        job = term.wait_for_line(lambda line: line.startswith("* job ") and "queued" in line, "")
        job_id = job.split()[2]
        term.wait_for_text(f"* job {job_id} succeeded 100% {site}/news.html", timeout=60)
        term.wait_for_text(f"* job {job_id}: Harbour news — Boats came in.")

    term.enter(f"/join @{carol.username}")
    term.wait_for_text(f"* {carol.username} (direct: ")
    term.wait_for_text("* no messages yet")
    term.wait_for(lambda t: t.cursor_row() == f"{carol.username}>", "the new chat prompt")

    term.enter("/chats")
    term.wait_for(
        lambda t: sum("UNREAD" in line for line in t.transcript()) == 2, "the chat list again"
    )
    term.enter("/nonsense")
    term.wait_for_text("! unknown command /nonsense")
    term.enter("/join nowhere-at-all")
    term.wait_for_text("! no chat or user named 'nowhere-at-all'")

    term.enter("/quit")
    assert term.wait_exit() == 0


def test_the_session_catches_up_after_a_server_restart(
    people: People,
    open_terminal: Callable[..., Terminal],
    chat_server: Deployment,
    tmp_path: Path,
) -> None:
    alice = people.alice
    bob_id = people.bob_id()
    direct = alice.call("POST", "/chats", {"type": "direct", "memberIds": [bob_id]}, status=201)
    relay = Relay(chat_server.port)
    try:
        bob = ClientUser(people.bob.username, tmp_path / "via-relay.json", relay.url)
        bob.run("login", bob.username, "--password-stdin", stdin=PASSWORD + "\n")
        term = open_terminal(bob, "--join", str(direct["id"]))
        term.wait_for_text("* no messages yet")
        before = alice.post(direct["id"], "before the restart")
        term.wait_for_line(message_row(before, alice.username), "a message before the restart")
        token_before = json.loads(bob.config.read_text())["sessions"][bob.server]["accessToken"]

        relay.cut()
        term.wait_for_line(lambda line: "reconnecting…" in line, "the session noticing")
        chat_server.kill_server()
        chat_server.start_server()
        away = [alice.post(direct["id"], f"while you were away {n}") for n in (1, 2)]
        prompt = f"{alice.username}> "
        term.enter("lost words")
        term.wait_for_line(lambda line: line.startswith("! not sent: "), "a failed send")
        term.type(UP)
        term.wait_for(lambda t: t.cursor_row() == prompt + "lost words", "the text back")
        wait_until_refused(chat_server.http, token_before)
        relay.restore()

        term.wait_for_text("* reconnected", timeout=60)
        for message in away:
            term.wait_for_line(message_row(message, alice.username), message["text"])
        live = alice.post(direct["id"], "live again")
        term.wait_for_line(message_row(live, alice.username), "a live message after it")
        term.wait_for(
            lambda t: typed_line_intact(t, prompt, "lost words", "live again"),
            "the line being typed kept through the restart",
        )
        term.enter("")
        term.wait_for_text(f"{people.bob.username}: lost words")
        assert shown_once(term, f"{people.bob.username}: lost words")
        for text in ("before the restart", "while you were away 1", "while you were away 2"):
            assert shown_once(term, f"{alice.username}: {text}"), f"{text!r} twice:\n{term.dump()}"
        resynced = any("catching up" in line for line in term.transcript())
        # Embedded mode keeps its event log in memory: after a restart the session is told to
        # resync and refetches. Services mode replays from Redis by id.
        assert resynced == (MODE == "embedded")

        token_after = json.loads(bob.config.read_text())["sessions"][bob.server]["accessToken"]
        assert token_after != token_before, "the expired access token was renewed"

        term.ctrl("c")
        assert term.wait_exit() == 0
    finally:
        relay.close()


def test_chat_needs_a_terminal(chat_server: Deployment, tmp_path: Path) -> None:
    nobody = ClientUser(unique("nobody"), tmp_path / "nobody.json", chat_server.http)
    result = nobody.run("chat", stdin="", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "parley: `parley client chat` needs a terminal; scripts can use `send` and `watch`"
    )
