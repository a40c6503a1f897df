"""The client's subcommands: each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from parley.client import config as cfg
from parley.client.api import Api, ApiError
from parley.client.ids import json_id
from parley.client.output import Printer, chat_name, chat_rows, message_line, one_line
from parley.client.watch import watch

FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class CommandError(Exception):
    """A failure the client detected itself (no such user, empty password, ...)."""


@dataclass
class Context:
    """What every command gets: its arguments, the API client and the printer."""

    args: argparse.Namespace
    api: Api
    out: Printer


Command = Callable[[Context], int]


def segment(value: str) -> str:
    """An id as one URL path segment."""
    return quote(value, safe="")


def read_password(args: argparse.Namespace, *, confirm: bool) -> str:
    """The password: one line of stdin with `--password-stdin`, else a hidden prompt."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and sys.stdin.isatty() and getpass.getpass("Again: ") != password:
            raise CommandError("the passwords do not match")
    if not password:
        raise CommandError("empty password")
    return password


def find_user(api: Api, username: str) -> Mapping[str, Any]:
    """The user with exactly this username (case-insensitive)."""
    wanted = username.strip().lower().removeprefix("@")
    page = api.get("/users", params={"query": wanted, "limit": 100})
    for user in page.get("items", []):
        if str(user.get("username", "")).lower() == wanted:
            return dict(user)
    raise CommandError(f"no user named {username!r}")


def _names(chat: Mapping[str, Any]) -> dict[Any, str]:
    return {m.get("userId"): str(m.get("username")) for m in chat.get("members") or []}


# -- accounts ----------------------------------------------------------------------------


def register(ctx: Context) -> int:
    """Create an account and log in to it."""
    password = read_password(ctx.args, confirm=True)
    body: dict[str, Any] = {"username": ctx.args.username, "password": password}
    if ctx.args.display_name:
        body["displayName"] = ctx.args.display_name
    user = ctx.api.request("POST", "/auth/register", json=body, auth=False)
    username = str(user["username"])
    _log_in(ctx.api, username, {"username": username, "password": password})
    ctx.out.result(
        user, f"registered {user['username']} (id {user['id']}), logged in on {ctx.api.server}"
    )
    return 0


def login(ctx: Context) -> int:
    """Log in with the password grant and store the token pair."""
    form = {"username": ctx.args.username, "password": read_password(ctx.args, confirm=False)}
    if ctx.args.otp:
        form["otp"] = ctx.args.otp
    try:
        _log_in(ctx.api, ctx.args.username, form)
    except ApiError as exc:
        if not (exc.status == 401 and exc.detail == "otp_required" and sys.stdin.isatty()):
            raise
        form["otp"] = input("One-time code: ").strip()
        _log_in(ctx.api, ctx.args.username, form)
    me = ctx.api.get("/users/me")
    ctx.out.result(me, f"logged in as {me['username']} on {ctx.api.server}")
    return 0


def _log_in(api: Api, username: str, form: Mapping[str, str]) -> None:
    """Trade a password (and one-time code) for a token pair, and store it."""
    tokens = api.request("POST", "/auth/token", data=form, auth=False)
    api.store_session(
        cfg.Session(
            username=username.lower(),
            access_token=str(tokens["access_token"]),
            refresh_token=str(tokens["refresh_token"]),
        )
    )


def logout(ctx: Context) -> int:
    """Revoke the refresh token on the server and forget the stored tokens."""
    session = ctx.api.session
    if session is None:
        ctx.out.result({"loggedOut": False}, f"not logged in to {ctx.api.server}")
        return 0
    try:
        ctx.api.request(
            "POST", "/auth/logout", json={"refreshToken": session.refresh_token}, auth=False
        )
    except ApiError as exc:
        ctx.out.notice(f"the server did not confirm the logout ({exc}); forgetting the tokens")
    ctx.api.forget_session()
    ctx.out.result({"loggedOut": True}, f"logged out of {ctx.api.server}")
    return 0


def whoami(ctx: Context) -> int:
    """Show the logged-in user."""
    me = ctx.api.get("/users/me")
    two_factor = ", 2FA on" if me.get("otpEnabled") else ""
    ctx.out.result(
        me,
        f"{me['username']} ({me['displayName']}), id {me['id']}{two_factor}, on {ctx.api.server}",
    )
    return 0


def users(ctx: Context) -> int:
    """List users whose username starts with QUERY."""
    page = ctx.api.get("/users", params={"query": ctx.args.query, "limit": ctx.args.limit})
    ctx.out.data(page)
    for user in page["items"]:
        ctx.out.line(f"{user['id']:>6}  {user['username']:<32}  {user['displayName']}")
    if not page["items"]:
        ctx.out.line("no users found")
    return 0


# -- chats -------------------------------------------------------------------------------


def chats(ctx: Context) -> int:
    """List the caller's chats with unread counts, latest activity first."""
    page = ctx.api.get("/chats", params={"limit": ctx.args.limit})
    ctx.out.data(page)
    me = ctx.api.session.username if ctx.api.session else None
    if not page["items"]:
        ctx.out.line("no chats yet")
        return 0
    for row in chat_rows(page["items"], me):
        ctx.out.line(row)
    return 0


def chat_create(ctx: Context) -> int:
    """Create a direct chat with USER, or a group chat with members."""
    args = ctx.args
    if args.direct:
        other = find_user(ctx.api, args.direct)
        body: dict[str, Any] = {"type": "direct", "memberIds": [other["id"]]}
    else:
        members = [find_user(ctx.api, name)["id"] for name in args.member or []]
        body = {"type": "group", "title": args.group, "memberIds": members}
        if args.description:
            body["description"] = args.description
    status, chat = ctx.api.call("POST", "/chats", json=body)
    me = ctx.api.session.username if ctx.api.session else None
    verb = "created" if status == 201 else "already have"
    ctx.out.result(chat, f"{verb} {chat['type']} chat {chat['id']}: {chat_name(chat, me)}")
    return 0


def chat_show(ctx: Context) -> int:
    """Show a chat and its members."""
    chat = ctx.api.get(f"/chats/{segment(ctx.args.chat_id)}")
    ctx.out.data(chat)
    me = ctx.api.session.username if ctx.api.session else None
    ctx.out.line(f"chat {chat['id']} ({chat['type']}): {chat_name(chat, me)}")
    if chat.get("description"):
        ctx.out.line(one_line(str(chat["description"])))
    for member in chat["members"]:
        ctx.out.line(f"  {member['username']} ({member['displayName']}) {member['role']}")
    return 0


def add_member(ctx: Context) -> int:
    """Add USER to a group chat (any member may)."""
    user = find_user(ctx.api, ctx.args.username)
    chat = ctx.api.post(f"/chats/{segment(ctx.args.chat_id)}/members", {"userId": user["id"]})
    me = ctx.api.session.username if ctx.api.session else None
    ctx.out.result(chat, f"added {user['username']} to chat {chat['id']}: {chat_name(chat, me)}")
    return 0


# -- messages ----------------------------------------------------------------------------


def send(ctx: Context) -> int:
    """Post a message. Retries carry the same clientId, so it is never duplicated."""
    client_id = ctx.args.client_id or uuid.uuid4().hex
    path = f"/chats/{segment(ctx.args.chat_id)}/messages"
    body = {"text": ctx.args.text, "clientId": client_id}
    status, message = ctx.api.call("POST", path, json=body, idempotent=True)
    note = " (already sent earlier)" if status == 200 else ""
    ctx.out.result(message, f"sent #{message['id']} to chat {message['chatId']}{note}")
    return 0


def edit(ctx: Context) -> int:
    """Change the text of one of your messages."""
    message = ctx.api.request(
        "PATCH", f"/messages/{segment(ctx.args.message_id)}", json={"text": ctx.args.text}
    )
    ctx.out.result(message, f"edited #{message['id']} in chat {message['chatId']}")
    return 0


def delete(ctx: Context) -> int:
    """Delete a message (yours, or any in a chat you own)."""
    ctx.api.request("DELETE", f"/messages/{segment(ctx.args.message_id)}")
    ctx.out.result(
        {"id": json_id(ctx.args.message_id), "deleted": True}, f"deleted #{ctx.args.message_id}"
    )
    return 0


def history(ctx: Context) -> int:
    """Show a chat's messages, oldest of the page first."""
    chat_id = segment(ctx.args.chat_id)
    params: dict[str, Any] = {"limit": ctx.args.limit}
    if ctx.args.cursor:
        params["cursor"] = ctx.args.cursor
    page = ctx.api.get(f"/chats/{chat_id}/messages", params=params)
    if ctx.out.as_json:
        ctx.out.data(page)
        return 0
    names = _names(ctx.api.get(f"/chats/{chat_id}"))
    if page.get("nextCursor"):
        ctx.out.line(f"(older messages: --cursor {page['nextCursor']})")
    for message in reversed(page["items"]):
        ctx.out.line(message_line(message, names.get(message.get("authorId"), "?")))
    if not page["items"]:
        ctx.out.line("no messages")
    return 0


def read(ctx: Context) -> int:
    """Move the read marker of a chat up to a message."""
    ctx.api.post(
        f"/chats/{segment(ctx.args.chat_id)}/read",
        {"messageId": json_id(ctx.args.message_id)},
        idempotent=True,
    )
    ctx.out.result(
        {"chatId": json_id(ctx.args.chat_id), "messageId": json_id(ctx.args.message_id)},
        f"chat {ctx.args.chat_id} read up to #{ctx.args.message_id}",
    )
    return 0


def chat_interactive(ctx: Context) -> int:
    """The interactive session: pick a chat, read, type; live events above the prompt."""
    from parley.client.chat.app import chat, needs_terminal  # prompt_toolkit loads only here

    problem = needs_terminal()
    if problem is not None:
        raise CommandError(problem)
    ctx.api.access_token()  # fail at once, with the usual message, when not logged in
    return chat(ctx.api, join=ctx.args.join)


def watch_events(ctx: Context) -> int:
    """Print live events until interrupted."""
    ctx.api.access_token()  # fail at once, with the usual message, when not logged in
    ctx.out.notice(f"watching {ctx.api.server} (Ctrl-C to stop)")
    return watch(ctx.api, ctx.out, last_event_id=ctx.args.since)


# -- jobs --------------------------------------------------------------------------------


def parse(ctx: Context) -> int:
    """Ask the server to fetch and parse a page; with --wait, show its title."""
    body: dict[str, Any] = {"url": ctx.args.url}
    if ctx.args.run_at:
        body["runAt"] = ctx.args.run_at
    job = ctx.api.post("/jobs/parse", body)
    if not ctx.args.wait:
        ctx.out.result(job, f"job {job['id']} {job['status']}: {job['url']}")
        return 0
    job = wait_for_job(ctx, job)
    if job["status"] != "succeeded":
        ctx.out.data({"job": job, "page": None})
        raise CommandError(
            f"job {job['id']} {job['status']}: {one_line(str(job.get('error') or 'no page'))}"
        )
    page = ctx.api.get(f"/pages/{segment(str(job['pageId']))}")
    ctx.out.data({"job": job, "page": page})
    ctx.out.line(one_line(str(page.get("title") or "(no title)")))
    if page.get("description"):
        ctx.out.line(one_line(str(page["description"])))
    ctx.out.line(str(page.get("finalUrl") or page.get("url")))
    return 0


def wait_for_job(ctx: Context, job: Mapping[str, Any]) -> Mapping[str, Any]:
    """Poll a job until it is final or `--timeout` runs out."""
    deadline = time.monotonic() + ctx.args.timeout
    delay = 0.2
    path = f"/jobs/{segment(str(job['id']))}"
    while job["status"] not in FINAL_JOB_STATUSES:
        if time.monotonic() >= deadline:
            raise CommandError(f"job {job['id']} still {job['status']} after {ctx.args.timeout}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
        job = ctx.api.get(path)
    return job
