"""`parley client watch` as a subprocess: live lines, JSON frames, resume by id, reconnects."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.client.harness import PASSWORD, ClientUser, Deployment, Relay, background, rest_login

pytestmark = pytest.mark.timeout(300)


def direct_chat(owner: ClientUser, other: ClientUser) -> int:
    """A direct chat between the two, created through the client."""
    result = owner.run("chat", "create", "--direct", other.username, "--json")
    chat_id: int = json.loads(result.stdout)["id"]
    return chat_id


def post(server: str, headers: dict[str, str], chat_id: int, text: str) -> dict[str, Any]:
    """Send a message over plain REST; the Message."""
    resp = httpx.post(
        f"{server}/api/v1/chats/{chat_id}/messages",
        json={"text": text},
        headers=headers,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    message: dict[str, Any] = resp.json()
    return message


def test_watch_prints_each_event_as_one_line_and_stops_cleanly(
    alice: ClientUser, bob: ClientUser, client_server: Deployment
) -> None:
    chat_id = direct_chat(alice, bob)
    alice_rest = rest_login(client_server.http, alice.username)
    watcher = bob.start("watch")
    with background(watcher) as (out, err):
        err.wait_for(lambda line: line == "parley: connected")
        err.wait_for(lambda line: line.startswith("parley: live after event "))
        post(client_server.http, alice_rest, chat_id, "hello watcher\nsecond line")
        line = out.wait_for(lambda line: "hello watcher" in line)
        assert f"chat {chat_id} " in line
        assert f"{alice.username}: hello watcher\\nsecond line" in line, "one line per event"
        first_id = event_id_of(line)

        post(client_server.http, alice_rest, chat_id, "and another")
        second_id = event_id_of(out.wait_for(lambda line: "and another" in line))
        assert second_id != first_id

        bob.run("read", str(chat_id), line.split("#")[1].split()[0])
        out.wait_for(lambda line: f"{bob.username} read up to" in line)

        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0, "Ctrl-C is the normal way to stop"
    assert not any("Traceback" in line for line in err.seen)

    resumed = bob.start("watch", "--since", first_id)
    with background(resumed) as (out, err):
        err.wait_for(lambda line: line == f"parley: connected (resuming after {first_id})")
        replayed = out.wait_for(lambda line: "#" in line)
        assert "and another" in replayed, "the id printed is the one --since takes"
        assert event_id_of(replayed) == second_id


def event_id_of(line: str) -> str:
    """The event id at the end of a human `watch` line (`... [<id>]`)."""
    assert line.endswith("]"), line
    return line.rsplit("[", 1)[1].removesuffix("]")


def test_watch_names_presence_and_hides_a_quick_reconnect(
    alice: ClientUser, bob: ClientUser, client_server: Deployment
) -> None:
    direct_chat(alice, bob)
    token = rest_login(client_server.http, alice.username)["Authorization"].split()[1]
    alice_ws = f"ws://127.0.0.1:{client_server.port}/api/v1/ws?token={token}"
    watcher = bob.start("watch")
    with background(watcher) as (out, err):
        err.wait_for(lambda line: line.startswith("parley: live after event "))
        with connect(alice_ws):
            out.wait_for(lambda line: line.endswith(f" {alice.username} is online"))
        with connect(alice_ws):  # back within a moment: no offline/online pair
            pass
        out.wait_for(lambda line: line.endswith(f" {alice.username} is offline"))
    presence = [line.split(maxsplit=1)[1] for line in out.seen if "is o" in line]
    assert presence == [f"{alice.username} is online", f"{alice.username} is offline"]


def test_watch_json_frames_and_resume_after_an_event_id(
    alice: ClientUser, bob: ClientUser, client_server: Deployment
) -> None:
    chat_id = direct_chat(alice, bob)
    alice_rest = rest_login(client_server.http, alice.username)
    frames: list[dict[str, Any]] = []
    watcher = bob.start("watch", "--json")
    with background(watcher) as (out, err):
        err.wait_for(lambda line: line == "parley: connected")
        for text in ("first", "second"):
            post(client_server.http, alice_rest, chat_id, text)
            line = out.wait_for(lambda line, t=text: f'"text":"{t}"' in line)
            frames.append(json.loads(line))
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(30) == 0
    first, second = frames
    assert first["type"] == second["type"] == "message.created"
    assert {"id", "type", "ts", "data"} <= first.keys()

    resumed = bob.start("watch", "--json", "--since", first["id"])
    with background(resumed) as (out, err):
        err.wait_for(lambda line: line.startswith("parley: connected (resuming after"))
        replayed = json.loads(out.wait_for(lambda line: '"message.created"' in line))
        assert replayed["id"] == second["id"], "replay starts right after the given id"
        assert replayed["data"]["text"] == "second"


def test_watch_reports_resync_when_the_id_is_too_old(bob: ClientUser) -> None:
    watcher = bob.start("watch", "--since", "1-0")
    with background(watcher) as (out, _err):
        out.wait_for(lambda line: "resync required" in line)
    as_json = bob.start("watch", "--json", "--since", "1-0")
    with background(as_json) as (out, _err):
        frame = json.loads(out.wait_for(lambda line: "resync" in line))
        assert frame["type"] == "resync.required"


def test_watch_reconnects_and_resumes_after_a_dropped_connection(
    alice: ClientUser, bob: ClientUser, client_server: Deployment
) -> None:
    chat_id = direct_chat(alice, bob)
    alice_rest = rest_login(client_server.http, alice.username)
    relay = Relay(client_server.port)
    try:
        via_relay = ClientUser(bob.username, bob.config, relay.url)
        via_relay.run("login", bob.username, "--password-stdin", stdin=PASSWORD + "\n")
        watcher = via_relay.start("watch")
        with background(watcher) as (out, err):
            err.wait_for(lambda line: line == "parley: connected")
            post(client_server.http, alice_rest, chat_id, "before the cut")
            out.wait_for(lambda line: "before the cut" in line)

            relay.cut()
            err.wait_for(lambda line: "disconnected" in line)
            err.wait_for(lambda line: "retrying in" in line)
            post(client_server.http, alice_rest, chat_id, "while you were away")
            relay.restore()

            err.wait_for(lambda line: line.startswith("parley: connected (resuming after"), 90)
            out.wait_for(lambda line: "while you were away" in line, 30)
            post(client_server.http, alice_rest, chat_id, "and live again")
            out.wait_for(lambda line: "and live again" in line)
        assert sum("while you were away" in line for line in out.seen) == 1, "no duplicates"
    finally:
        relay.close()


def test_watch_needs_a_login(make_user: Callable[[str], ClientUser]) -> None:
    stranger = make_user("stranger")
    result = stranger.run("watch", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("parley: 401 not logged in")
    assert "Traceback" not in result.stderr


def test_watch_renews_a_rejected_access_token(
    alice: ClientUser, bob: ClientUser, client_server: Deployment
) -> None:
    chat_id = direct_chat(alice, bob)
    data = json.loads(bob.config.read_text())
    data["sessions"][bob.server]["accessToken"] = "expired"
    bob.config.write_text(json.dumps(data))
    watcher = bob.start("watch")
    with background(watcher) as (out, err):
        err.wait_for(lambda line: line == "parley: connected")
        post(client_server.http, rest_login(client_server.http, alice.username), chat_id, "renewed")
        out.wait_for(lambda line: "renewed" in line)
    assert json.loads(bob.config.read_text())["sessions"][bob.server]["accessToken"] != "expired"


def test_watch_stops_when_the_session_is_dead(bob: ClientUser) -> None:
    data = json.loads(bob.config.read_text())
    data["sessions"][bob.server].update(accessToken="dead", refreshToken="dead")
    bob.config.write_text(json.dumps(data))
    result = bob.run("watch", check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("parley: 401 session expired")
    assert "Traceback" not in result.stderr
