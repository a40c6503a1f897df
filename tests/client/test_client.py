"""The real `parley client` against a real `parley serve`: accounts, chats, messages, errors."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.client.harness import PASSWORD, ClientUser, Deployment, unique
from tests.fixtures.servers import free_port

pytestmark = pytest.mark.timeout(300)  # the first test also waits for the server to start


def one_line_error(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """Assert the client failed with exactly one `parley: ...` line on stderr; that line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert result.stdout == ""
    return lines[0]


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The single JSON document a `--json` command printed."""
    return json.loads(result.stdout)


def config_of(user: ClientUser) -> dict[str, Any]:
    """The user's stored session for the test server."""
    data: dict[str, Any] = json.loads(user.config.read_text())
    session: dict[str, Any] = data["sessions"][user.server]
    return session


def test_register_login_whoami(make_user: Callable[[str], ClientUser]) -> None:
    user = make_user("alice")
    out = user.run(
        "register",
        user.username,
        "--display-name",
        "Alice A",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert f"registered {user.username}" in out.stdout
    assert f"logged in on {user.server}" in out.stdout
    assert stat.S_IMODE(user.config.stat().st_mode) == 0o600
    assert config_of(user)["username"] == user.username
    assert user.username in user.run("whoami").stdout, "registering logs in"
    user.run("logout")

    taken = user.run(
        "register", user.username, "--password-stdin", stdin=PASSWORD + "\n", check=False
    )
    one_line_error(taken, "parley: 409 ")
    short = user.run("register", unique("x"), "--password-stdin", stdin="short\n", check=False)
    one_line_error(short, "parley: 422 password")

    wrong = user.run(
        "login", user.username, "--password-stdin", stdin="not the password\n", check=False
    )
    one_line_error(wrong, "parley: 401 ")

    login = user.run("login", user.username, "--password-stdin", stdin=PASSWORD + "\n")
    assert f"logged in as {user.username}" in login.stdout

    who = user.run("whoami")
    assert user.username in who.stdout
    assert "Alice A" in who.stdout
    me = as_json(user.run("whoami", "--json"))
    assert me["username"] == user.username
    assert me["displayName"] == "Alice A"
    assert me["otpEnabled"] is False

    found = as_json(user.run("users", user.username[:6], "--json"))
    assert user.username in [u["username"] for u in found["items"]]
    assert user.username in user.run("users", user.username).stdout


def test_direct_chat_send_history_unread_and_read(alice: ClientUser, bob: ClientUser) -> None:
    chat = as_json(alice.run("chat", "create", "--direct", bob.username, "--json"))
    chat_id = str(chat["id"])
    assert chat["type"] == "direct"
    assert {m["username"] for m in chat["members"]} == {alice.username, bob.username}
    again = alice.run("chat", "create", "--direct", bob.username)
    assert f"already have direct chat {chat_id}" in again.stdout

    first = as_json(alice.run("send", chat_id, "hello bob", "--json"))
    second = alice.run("send", chat_id, "second\nline")
    assert f"to chat {chat_id}" in second.stdout
    second_id = second.stdout.split("#")[1].split()[0]

    listed = as_json(bob.run("chats", "--json"))
    mine = next(c for c in listed["items"] if str(c["id"]) == chat_id)
    assert mine["unreadCount"] == 2
    assert mine["lastMessage"]["text"] == "second\nline"
    table = bob.run("chats").stdout.splitlines()
    row = next(line for line in table if line.split()[0] == chat_id)
    assert row.split()[1:3] == ["direct", "2"]
    assert alice.username in row, "a direct chat is named after the other member"

    history = bob.run("history", chat_id).stdout
    assert history.index("hello bob") < history.index("second\\nline"), "oldest first"
    assert f"#{first['id']}" in history
    assert f"{alice.username}: hello bob" in history

    newest = as_json(bob.run("history", chat_id, "--limit", "1", "--json"))
    assert [m["text"] for m in newest["items"]] == ["second\nline"]
    assert newest["nextCursor"]
    older = as_json(
        bob.run("history", chat_id, "--limit", "1", "--cursor", newest["nextCursor"], "--json")
    )
    assert [m["id"] for m in older["items"]] == [first["id"]]

    assert "read up to" in bob.run("read", chat_id, str(first["id"])).stdout
    unread = {str(c["id"]): c["unreadCount"] for c in as_json(bob.run("chats", "--json"))["items"]}
    assert unread[chat_id] == 1
    bob.run("read", chat_id, second_id)
    unread = {str(c["id"]): c["unreadCount"] for c in as_json(bob.run("chats", "--json"))["items"]}
    assert unread[chat_id] == 0


def test_group_chat_with_members(
    alice: ClientUser, bob: ClientUser, make_user: Callable[[str], ClientUser]
) -> None:
    carol = make_user("carol")
    carol.sign_up()
    chat = as_json(
        alice.run(
            "chat",
            "create",
            "--group",
            "Team room",
            "--member",
            bob.username,
            "--member",
            carol.username,
            "--json",
        )
    )
    assert chat["type"] == "group"
    assert chat["title"] == "Team room"
    roles = {m["username"]: m["role"] for m in chat["members"]}
    assert roles == {alice.username: "owner", bob.username: "member", carol.username: "member"}

    assert "Team room" in carol.run("chats").stdout
    shown = bob.run("chat", "show", str(chat["id"])).stdout
    assert "Team room" in shown
    assert f"{alice.username} " in shown


def test_edit_and_delete_messages(alice: ClientUser, bob: ClientUser) -> None:
    chat_id = str(as_json(alice.run("chat", "create", "--direct", bob.username, "--json"))["id"])
    mine = as_json(alice.run("send", chat_id, "frist", "--json"))
    theirs = as_json(bob.run("send", chat_id, "from bob", "--json"))

    edited = alice.run("edit", str(mine["id"]), "first")
    assert edited.stdout.strip() == f"edited #{mine['id']} in chat {chat_id}"
    assert "first (edited)" in bob.run("history", chat_id).stdout
    one_line_error(alice.run("edit", str(theirs["id"]), "mine now", check=False), "parley: 403 ")

    one_line_error(bob.run("delete", str(mine["id"]), check=False), "parley: 403 ")
    deleted = as_json(alice.run("delete", str(mine["id"]), "--json"))
    assert deleted == {"id": mine["id"], "deleted": True}
    history = as_json(bob.run("history", chat_id, "--json"))
    assert [m["id"] for m in history["items"]] == [theirs["id"]]
    one_line_error(alice.run("delete", str(mine["id"]), check=False), "parley: 404 ")


def test_add_member_to_a_group(
    alice: ClientUser, bob: ClientUser, make_user: Callable[[str], ClientUser]
) -> None:
    carol = make_user("carol")
    carol.sign_up()
    group = as_json(
        alice.run("chat", "create", "--group", "Crew", "--member", bob.username, "--json")
    )
    added = bob.run("add-member", str(group["id"]), carol.username)
    assert added.stdout.strip() == f"added {carol.username} to chat {group['id']}: Crew"
    assert "Crew" in carol.run("chats").stdout

    one_line_error(
        bob.run("add-member", str(group["id"]), carol.username, check=False), "parley: 409 "
    )
    one_line_error(
        bob.run("add-member", str(group["id"]), unique("nobody"), check=False),
        "parley: no user named",
    )
    direct = as_json(alice.run("chat", "create", "--direct", bob.username, "--json"))
    one_line_error(
        alice.run("add-member", str(direct["id"]), carol.username, check=False), "parley: 400 "
    )


def test_send_retry_with_the_same_client_id_is_not_duplicated(
    alice: ClientUser, bob: ClientUser
) -> None:
    chat_id = str(as_json(alice.run("chat", "create", "--direct", bob.username, "--json"))["id"])
    first = as_json(alice.run("send", chat_id, "only once", "--client-id", "retry-1", "--json"))
    retry = alice.run("send", chat_id, "only once", "--client-id", "retry-1")
    assert f"sent #{first['id']}" in retry.stdout
    assert "already sent" in retry.stdout
    history = as_json(alice.run("history", chat_id, "--json"))
    assert [m["clientId"] for m in history["items"]] == ["retry-1"]

    generated = as_json(alice.run("send", chat_id, "fresh", "--json"))
    assert generated["clientId"], "every send carries a clientId"


def test_errors_are_one_line_with_a_nonzero_exit(
    alice: ClientUser, make_user: Callable[[str], ClientUser]
) -> None:
    assert one_line_error(alice.run("send", "999999", "hi", check=False), "parley: 404 ") == (
        "parley: 404 chat not found"
    )
    one_line_error(alice.run("history", "999999", check=False), "parley: 404 chat not found")
    one_line_error(alice.run("history", "not-a-number", check=False), "parley: 422 ")
    one_line_error(alice.run("read", "999999", "1", check=False), "parley: 404 ")
    # Digits to str.isdigit(), not to the API: sent as the text they are, answered 422.
    one_line_error(alice.run("read", "999999", "\u00b2", check=False), "parley: 422 ")
    one_line_error(
        alice.run("chat", "create", "--direct", unique("nobody"), check=False),
        "parley: no user named",
    )

    stranger = make_user("stranger")
    one_line_error(stranger.run("whoami", check=False), "parley: 401 not logged in")
    one_line_error(stranger.run("chats", check=False), "parley: 401 not logged in")

    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = stranger.run(
        "register",
        stranger.username,
        "--password-stdin",
        "--server",
        nowhere,
        stdin=PASSWORD + "\n",
        check=False,
    )
    one_line_error(unreachable, f"parley: cannot connect to {nowhere}")


def test_a_rejected_access_token_is_refreshed_and_the_new_pair_stored(
    alice: ClientUser, client_server: Deployment
) -> None:
    data = json.loads(alice.config.read_text())
    old_refresh = data["sessions"][alice.server]["refreshToken"]
    data["sessions"][alice.server]["accessToken"] = "expired-or-otherwise-rejected"
    alice.config.write_text(json.dumps(data))

    assert alice.username in alice.run("whoami").stdout

    session = config_of(alice)
    assert session["accessToken"] != "expired-or-otherwise-rejected"
    assert session["refreshToken"] != old_refresh
    reuse = httpx.post(
        f"{client_server.http}/api/v1/auth/refresh", json={"refreshToken": old_refresh}, timeout=30
    )
    # Within the server's reuse interval the old token gets the same successor (two
    # clients refreshing at once), never a second, diverging pair.
    assert reuse.status_code == 200, reuse.text
    assert reuse.json()["refresh_token"] == session["refreshToken"]
    assert alice.username in alice.run("whoami").stdout


def test_a_dead_session_asks_to_log_in_again(alice: ClientUser) -> None:
    data = json.loads(alice.config.read_text())
    data["sessions"][alice.server].update(accessToken="dead", refreshToken="dead")
    alice.config.write_text(json.dumps(data))
    one_line_error(alice.run("whoami", check=False), "parley: 401 session expired")
    assert alice.server not in json.loads(alice.config.read_text())["sessions"]


def test_logout_revokes_the_refresh_token(alice: ClientUser, client_server: Deployment) -> None:
    refresh_token = config_of(alice)["refreshToken"]
    assert "logged out" in alice.run("logout").stdout
    one_line_error(alice.run("whoami", check=False), "parley: 401 not logged in")
    reuse = httpx.post(
        f"{client_server.http}/api/v1/auth/refresh",
        json={"refreshToken": refresh_token},
        timeout=30,
    )
    assert reuse.status_code == 401
    assert "not logged in" in alice.run("logout").stdout
