"""`parley client`: argument parsing, dispatch, and one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from parley.client import commands
from parley.client import config as cfg
from parley.client.api import Api, ApiError
from parley.client.output import Printer

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """`--server` and `--json`, accepted before and after the subcommand."""
    default_server = argparse.SUPPRESS if suppress else None
    default_json = argparse.SUPPRESS if suppress else False
    parser.add_argument(
        "--server",
        default=default_server,
        metavar="URL",
        help=f"server URL (default: ${cfg.SERVER_ENV}, the last login, or {cfg.DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default_json, help="machine-readable output"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `parley client`."""
    parser = argparse.ArgumentParser(
        prog="parley client",
        description="Terminal client for a Parley server.",
        epilog=f"Tokens are kept in ${cfg.CONFIG_ENV} or ~/.config/parley/client.json.",
    )
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: commands.Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("register", commands.register, "create an account and log in")
    p.add_argument("username")
    p.add_argument("--display-name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    p = command("login", commands.login, "log in and store the tokens")
    p.add_argument("username")
    p.add_argument("--otp", help="the one-time code when two-factor login is on")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    command("logout", commands.logout, "revoke the refresh token and forget the tokens")
    command("whoami", commands.whoami, "show the logged-in user")

    p = command("users", commands.users, "find users by username prefix")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)

    p = command("chats", commands.chats, "list your chats with unread counts")
    p.add_argument("--limit", type=int, default=50)

    chat = sub.add_parser(
        "chat",
        parents=[common],
        help="the interactive session (or: chat create, chat show)",
        description="Without an action: an interactive session where live events print "
        "above the line being typed (/help inside lists its commands).",
    )
    chat.set_defaults(func=commands.chat_interactive)
    chat.add_argument("--join", metavar="CHAT", help="open this chat (id, name or username)")
    chat_sub = chat.add_subparsers(dest="chat_command", required=False, metavar="[ACTION]")
    p = chat_sub.add_parser("create", parents=[common], help="create a direct or group chat")
    p.set_defaults(func=commands.chat_create)
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--direct", metavar="USER", help="a direct chat with USER")
    kind.add_argument("--group", metavar="TITLE", help="a group chat with this title")
    p.add_argument(
        "--member", metavar="USER", nargs="+", action="extend", help="group members (usernames)"
    )
    p.add_argument("--description")
    p = chat_sub.add_parser("show", parents=[common], help="show a chat and its members")
    p.set_defaults(func=commands.chat_show)
    p.add_argument("chat_id", metavar="CHAT_ID")

    p = command("send", commands.send, "post a message")
    p.add_argument("chat_id", metavar="CHAT_ID")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--client-id", help="idempotency key (default: a fresh random one)")

    p = command("edit", commands.edit, "change the text of one of your messages")
    p.add_argument("message_id", metavar="MESSAGE_ID")
    p.add_argument("text", metavar="TEXT")

    p = command("delete", commands.delete, "delete a message (yours, or any in a chat you own)")
    p.add_argument("message_id", metavar="MESSAGE_ID")

    p = command("add-member", commands.add_member, "add someone to a group chat")
    p.add_argument("chat_id", metavar="CHAT_ID")
    p.add_argument("username", metavar="USER")

    p = command("history", commands.history, "show a chat's recent messages")
    p.add_argument("chat_id", metavar="CHAT_ID")
    p.add_argument("--limit", type=int, default=20, help="1-100 (default 20)")
    p.add_argument("--cursor", help="the cursor of older messages")

    p = command("read", commands.read, "mark a chat read up to a message")
    p.add_argument("chat_id", metavar="CHAT_ID")
    p.add_argument("message_id", metavar="MESSAGE_ID")

    p = command("watch", commands.watch_events, "print live events (Ctrl-C to stop)")
    p.add_argument("--since", metavar="EVENT_ID", help="replay the events after this id first")

    p = command("parse", commands.parse, "fetch and parse a web page on the server")
    p.add_argument("url", metavar="URL")
    p.add_argument("--wait", action="store_true", help="wait for the result and show it")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    p.add_argument("--run-at", metavar="ISO_TIME", help="schedule the job for later")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run `parley client` with `argv` (the arguments after `client`); the exit code."""
    args = build_parser().parse_args(list(argv))
    printer = Printer(as_json=args.json)
    try:
        path = cfg.config_path()
        server = cfg.resolve_server(args.server, cfg.load(path))
        with Api(server, path) as api:
            return int(args.func(commands.Context(args=args, api=api, out=printer)))
    except (ApiError, cfg.ConfigError, commands.CommandError) as exc:
        printer.notice(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # `parley client history 1 | head`: stop quietly
        return EXIT_ERROR
