"""How the client prints: human lines by default, JSON with `--json`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TextIO

NameLookup = Callable[[Any, Any], str]


def one_line(text: str, limit: int | None = None) -> str:
    """`text` on a single line (newlines escaped), cut to `limit` characters."""
    flat = text.replace("\r", "").replace("\n", "\\n")
    if limit is not None and len(flat) > limit:
        return flat[: max(limit - 1, 0)] + "…"
    return flat


def clock(ts: Any) -> str:
    """An ISO timestamp as local `YYYY-MM-DD HH:MM`, or the input when it does not parse."""
    if not isinstance(ts, str):
        return "?"
    try:
        return datetime.fromisoformat(ts).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ts


def time_of_day(ts: Any) -> str:
    """An ISO timestamp as local `HH:MM:SS` (now, for frames without one)."""
    if not isinstance(ts, str):
        return datetime.now().strftime("%H:%M:%S")
    try:
        return datetime.fromisoformat(ts).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return ts


class Printer:
    """Writes results to stdout, notices to stderr; JSON mode prints bodies verbatim."""

    def __init__(self, *, as_json: bool, out: TextIO | None = None, err: TextIO | None = None):
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str) -> None:
        """A line of human output (nothing in JSON mode)."""
        if not self.as_json:
            print(text, file=self.out, flush=True)

    def data(self, value: Any) -> None:
        """A JSON value on one line (JSON mode only)."""
        if self.as_json:
            print(json.dumps(value, ensure_ascii=False, separators=(",", ":")), file=self.out)
            self.out.flush()

    def result(self, value: Any, human: str) -> None:
        """`value` as JSON in JSON mode, else the human text."""
        if self.as_json:
            self.data(value)
        else:
            self.line(human)

    def notice(self, text: str) -> None:
        """A status message for a person, on stderr, in both modes."""
        print(f"parley: {text}", file=self.err, flush=True)


def chat_name(chat: Mapping[str, Any], me: str | None = None) -> str:
    """A chat's title, or for a direct chat the other member's username."""
    title = chat.get("title")
    if isinstance(title, str) and title:
        return title
    members = chat.get("members") or []
    others = [
        str(m.get("username")) for m in members if isinstance(m, dict) and m.get("username") != me
    ]
    return ", ".join(others) or "(no title)"


def message_line(message: Mapping[str, Any], author: str) -> str:
    """A message as one history line: id, time, author, text, ready previews."""
    edited = " (edited)" if message.get("editedAt") else ""
    text = one_line(str(message.get("text", "")))
    line = f"#{message.get('id')}  {clock(message.get('createdAt'))}  {author}: {text}{edited}"
    for preview in message.get("previews") or []:
        if isinstance(preview, dict) and preview.get("status") == "ready":
            title = one_line(str(preview.get("title") or preview.get("url")), 80)
            line += f"  [{title}]"
    return line


def event_line(frame: Mapping[str, Any], names: NameLookup) -> str | None:
    """One WebSocket event as one human line; None for frames not worth a line (pong).

    `names(chat_id, user_id)` turns a user id into a name. A logged event's line ends with
    its id in brackets: the position `watch --since` resumes after.
    """
    line = _event_text(frame, names)
    event_id = frame.get("id")
    if line is not None and isinstance(event_id, str):
        line += f"  [{event_id}]"
    return line


def _event_text(frame: Mapping[str, Any], names: NameLookup) -> str | None:
    kind = frame.get("type")
    data = frame.get("data")
    d: Mapping[str, Any] = data if isinstance(data, dict) else {}
    at = time_of_day(frame.get("ts"))
    chat = d.get("chatId")
    if kind == "message.created":
        author = names(chat, d.get("authorId"))
        text = one_line(str(d.get("text", "")))
        return f"{at} chat {chat} #{d.get('id')} {author}: {text}"
    if kind == "message.updated":
        parts = [f"{at} chat {chat} #{d.get('id')} updated: {one_line(str(d.get('text', '')))}"]
        parts.extend(f"[{label}]" for label in preview_labels(d))
        return " ".join(parts)
    if kind == "message.deleted":
        return f"{at} chat {chat} #{d.get('id')} deleted"
    if kind in ("chat.created", "chat.updated"):
        verb = "new chat" if kind == "chat.created" else "chat changed"
        return f"{at} {verb} {d.get('id')}: {one_line(chat_name(d), 80)}"
    if kind in ("member.added", "member.removed"):
        verb = "joined" if kind == "member.added" else "left"
        return f"{at} chat {chat}: {names(chat, d.get('userId'))} {verb}"
    if kind == "read":
        who = names(chat, d.get("userId"))
        return f"{at} chat {chat}: {who} read up to #{d.get('messageId')}"
    if kind == "typing":
        return f"{at} chat {chat}: {names(chat, d.get('userId'))} is typing"
    if kind == "presence":
        return f"{at} {names(None, d.get('userId'))} is {d.get('status')}"
    if kind == "job.updated":
        return f"{at} {job_line(d)}"
    if kind == "resync.required":
        return f"{at} resync required: some events were missed; refetch with `chats`/`history`"
    if kind in ("pong", "ready"):
        return None
    if kind == "error":
        return f"{at} server: {one_line(str(frame.get('detail', 'error')))}"
    return f"{at} {kind} {json.dumps(d, ensure_ascii=False, separators=(',', ':'))}"


def preview_labels(message: Mapping[str, Any]) -> list[str]:
    """`url: title` (or `url: failed`) for each preview of a message that is no longer pending."""
    labels = []
    for preview in message.get("previews") or []:
        if isinstance(preview, dict) and preview.get("status") != "pending":
            label = preview.get("title") or preview.get("status")
            labels.append(f"{preview.get('url')}: {one_line(str(label), 80)}")
    return labels


def job_line(job: Mapping[str, Any]) -> str:
    """A parse job's state on one line: `job 5 running 40% URL (error)`."""
    error = f" ({one_line(str(job['error']), 80)})" if job.get("error") else ""
    return (
        f"job {job.get('id')} {job.get('status')} {job.get('progress', 0)}% {job.get('url')}{error}"
    )


def chat_rows(chats: Iterable[Mapping[str, Any]], me: str | None) -> list[str]:
    """The `chats` table: id, type, unread count, name and the last message."""
    rows = [f"{'ID':>6}  {'TYPE':<6}  {'UNREAD':>6}  CHAT"]
    for chat in chats:
        line = (
            f"{chat.get('id')!s:>6}  {chat.get('type')!s:<6}  {chat.get('unreadCount', 0)!s:>6}  "
            f"{one_line(chat_name(chat, me), 40)}"
        )
        last = chat.get("lastMessage")
        if isinstance(last, dict):
            names = {m.get("userId"): m.get("username") for m in chat.get("members") or []}
            author = names.get(last.get("authorId"), "?")
            line += f"  — {author}: {one_line(str(last.get('text', '')), 50)}"
        rows.append(line)
    return rows
