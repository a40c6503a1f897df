"""The commands typed at the interactive prompt: `/join`, `/edit`, `/parse`, ...

A line that does not start with `/` is a message to the open chat (`//` sends one that
does). Each command is a coroutine taking the view and the rest of the line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from parley.client.api import ApiError
from parley.client.chat.view import ChatError, ChatView
from parley.client.ids import json_id
from parley.client.output import job_line

Handler = Callable[[ChatView, str], Awaitable[bool]]


@dataclass(frozen=True)
class SlashCommand:
    """One command: what it is called, how it is used, and what runs it."""

    name: str
    usage: str
    summary: str
    run: Handler


def _segment(value: str) -> str:
    return quote(value, safe="")


def _message_id(text: str) -> str:
    """A message id as typed (`12` or `#12`)."""
    message_id = text.strip().removeprefix("#")
    if not message_id:
        raise ChatError("which message? the number after # in front of it")
    return message_id


async def join(view: ChatView, args: str) -> bool:
    """Open another chat."""
    await view.open(await view.find_chat(args))
    return True


async def chats(view: ChatView, args: str) -> bool:
    """List the chats with unread counts."""
    del args
    await view.show_chats()
    return True


async def edit(view: ChatView, args: str) -> bool:
    """Change the text of one of your messages."""
    message_id, _, text = args.strip().partition(" ")
    if not text.strip():
        raise ChatError("usage: /edit <message-id> <new text>")
    path = f"/messages/{_segment(_message_id(message_id))}"
    await view.edited(await view.api.request("PATCH", path, json={"text": text.strip()}))
    return True


async def delete(view: ChatView, args: str) -> bool:
    """Delete a message (yours, or any in a chat you own)."""
    message_id = _message_id(args)
    await view.api.request("DELETE", f"/messages/{_segment(message_id)}")
    await view.deleted(json_id(message_id))
    return True


async def add(view: ChatView, args: str) -> bool:
    """Add someone to the open group chat."""
    if view.current is None:
        raise ChatError("no chat is open: /join <chat> first")
    if not args.strip():
        raise ChatError("usage: /add <username>")
    user = await view.find_user(args)
    chat = await view.api.request(
        "POST", f"/chats/{view.current_id}/members", json={"userId": user["id"]}
    )
    view.member_added(chat, user["id"])
    return True


async def parse(view: ChatView, args: str) -> bool:
    """Ask the server to fetch and parse a page; its progress follows live."""
    url = args.strip()
    if not url:
        raise ChatError("usage: /parse <URL>")
    job = await view.api.request("POST", "/jobs/parse", json={"url": url})
    view.write(f"* {job_line(job)}")
    return True


async def help_(view: ChatView, args: str) -> bool:
    """List the commands."""
    del args
    view.write("* type a message and press Enter to send it to the open chat")
    for command in COMMANDS.values():
        view.write(f"  {command.usage:<28} {command.summary}")
    view.write("  Ctrl-D or Ctrl-C             leave")
    return True


async def quit_(view: ChatView, args: str) -> bool:
    """Leave the session."""
    del view, args
    return False


COMMANDS: dict[str, SlashCommand] = {
    c.name: c
    for c in (
        SlashCommand("join", "/join <chat|username>", "open a chat (or a direct one)", join),
        SlashCommand("chats", "/chats", "list your chats with unread counts", chats),
        SlashCommand("edit", "/edit <message-id> <text>", "change one of your messages", edit),
        SlashCommand("delete", "/delete <message-id>", "delete a message", delete),
        SlashCommand("add", "/add <username>", "add someone to this group", add),
        SlashCommand("parse", "/parse <URL>", "fetch and parse a page, with progress", parse),
        SlashCommand("help", "/help", "this list", help_),
        SlashCommand("quit", "/quit", "leave (also Ctrl-D)", quit_),
    )
}


async def handle(view: ChatView, line: str) -> bool:
    """Act on one line typed at the prompt; False when the session should end.

    Failures (a refused request, a chat that does not exist) print one line and the
    session goes on.
    """
    text = line.strip()
    if not text:
        return True
    if text.startswith("/") and not text.startswith("//"):
        return await _command(view, text[1:])
    await _send(view, text[1:] if text.startswith("//") else line.rstrip())
    return True


async def _command(view: ChatView, text: str) -> bool:
    name, _, args = text.partition(" ")
    command = COMMANDS.get(name.lower())
    try:
        if command is None:
            raise ChatError(f"unknown command /{name}: /help lists them")
        return await command.run(view, args)
    except (ApiError, ChatError) as exc:
        view.write(f"! {exc}")
        return True


async def _send(view: ChatView, text: str) -> None:
    try:
        await view.send(text)
    except ChatError as exc:
        view.write(f"! {exc}")
    except ApiError as exc:
        view.write(f"! not sent: {exc} (↑ brings the text back)")
