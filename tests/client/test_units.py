"""The client's pure parts: event lines, error details, the config file."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.client import config as cfg
from parley.client.api import error_detail
from parley.client.main import build_parser
from parley.client.output import event_line, message_line
from parley.client.stream import ws_url

TS = "2025-01-02T03:04:05+00:00"


def names(chat_id: Any, user_id: Any) -> str:
    return {1: "alice", 2: "bob"}.get(user_id, f"user {user_id}")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {
                "type": "message.created",
                "data": {"id": 7, "chatId": 3, "authorId": 1, "text": "a\nb"},
            },
            "chat 3 #7 alice: a\\nb",
        ),
        (
            {
                "type": "message.updated",
                "data": {
                    "id": 7,
                    "chatId": 3,
                    "text": "see x",
                    "previews": [
                        {"url": "http://x", "status": "ready", "title": "X"},
                        {"url": "http://y", "status": "pending"},
                    ],
                },
            },
            "chat 3 #7 updated: see x [http://x: X]",
        ),
        ({"type": "message.deleted", "data": {"id": 7, "chatId": 3}}, "chat 3 #7 deleted"),
        ({"type": "chat.created", "data": {"id": 4, "title": "Team"}}, "new chat 4: Team"),
        ({"type": "chat.updated", "data": {"id": 4, "title": "Crew"}}, "chat changed 4: Crew"),
        ({"type": "member.added", "data": {"chatId": 4, "userId": 2}}, "chat 4: bob joined"),
        ({"type": "member.removed", "data": {"chatId": 4, "userId": 2}}, "chat 4: bob left"),
        (
            {"type": "read", "data": {"chatId": 4, "userId": 2, "messageId": 9}},
            "chat 4: bob read up to #9",
        ),
        ({"type": "typing", "data": {"chatId": 4, "userId": 1}}, "chat 4: alice is typing"),
        ({"type": "presence", "data": {"userId": 2, "status": "online"}}, "bob is online"),
        (
            {
                "type": "job.updated",
                "data": {"id": 5, "status": "failed", "progress": 100, "url": "u", "error": "boom"},
            },
            "job 5 failed 100% u (boom)",
        ),
        ({"type": "resync.required"}, "resync required"),
        ({"type": "error", "detail": "chat not found"}, "server: chat not found"),
        ({"type": "something.new", "data": {"k": 1}}, 'something.new {"k":1}'),
    ],
)
def test_every_event_is_one_line(frame: dict[str, Any], expected: str) -> None:
    line = event_line({"ts": TS, **frame}, names)
    assert line is not None
    assert expected in line
    assert "\n" not in line


def test_a_logged_event_line_ends_with_its_id() -> None:
    frame = {"id": "1700000000000-3", "type": "message.deleted", "ts": TS, "data": {"id": 7}}
    line = event_line(frame, names)
    assert line is not None
    assert line.endswith("#7 deleted  [1700000000000-3]")
    typing = event_line({"type": "typing", "ts": TS, "data": {"chatId": 4, "userId": 1}}, names)
    assert typing is not None
    assert not typing.endswith("]"), "ephemeral events have no id"


def test_pong_and_ready_print_nothing() -> None:
    assert event_line({"type": "pong"}, names) is None
    assert event_line({"type": "ready", "data": {"lastEventId": "1-0"}}, names) is None


def test_message_line_shows_ready_previews_and_edits() -> None:
    line = message_line(
        {
            "id": 3,
            "text": "look",
            "createdAt": TS,
            "editedAt": TS,
            "previews": [{"url": "http://x", "status": "ready", "title": "Title"}],
        },
        "alice",
    )
    assert line.startswith("#3  ")
    assert line.endswith("alice: look (edited)  [Title]")


def test_error_detail_reads_strings_validation_lists_and_non_json() -> None:
    assert error_detail(httpx.Response(404, json={"detail": "chat not found"})) == "chat not found"
    validation = {"detail": [{"loc": ["body", "text"], "msg": "too long"}, {"msg": "bad"}]}
    assert error_detail(httpx.Response(422, json=validation)) == "text: too long; bad"
    assert error_detail(httpx.Response(502, text="<html>bad gateway</html>")) == "Bad Gateway"


def test_ws_url_follows_the_server_scheme() -> None:
    assert ws_url("http://h:1/p", None) == "ws://h:1/p/api/v1/ws"
    assert ws_url("https://h", "5-0") == "wss://h/api/v1/ws?lastEventId=5-0"


def test_server_choice_and_normal_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cfg.SERVER_ENV, raising=False)
    remembered = cfg.ClientConfig(current_server="http://remembered:1")
    assert cfg.resolve_server(None, cfg.ClientConfig()) == cfg.DEFAULT_SERVER
    assert cfg.resolve_server(None, remembered) == "http://remembered:1"
    assert cfg.resolve_server("example.org:8000/", remembered) == "http://example.org:8000"
    monkeypatch.setenv(cfg.SERVER_ENV, "https://env.example/")
    assert cfg.resolve_server(None, remembered) == "https://env.example"


def test_config_round_trip_is_private(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "client.json"
    assert cfg.load(path) == cfg.ClientConfig()
    config = cfg.ClientConfig(
        current_server="http://s", sessions={"http://s": cfg.Session("ann", "a", "r")}
    )
    cfg.save(path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cfg.load(path) == config


def test_broken_config_files(tmp_path: Path) -> None:
    path = tmp_path / "client.json"
    path.write_text("{not json")
    with pytest.raises(cfg.ConfigError, match="not valid JSON"):
        cfg.load(path)
    path.write_text("[]")
    with pytest.raises(cfg.ConfigError, match="JSON object"):
        cfg.load(path)
    path.write_text(json.dumps({"sessions": {"http://s": {"username": "x"}, "bad": 3}}))
    assert cfg.load(path).sessions == {}, "incomplete sessions are dropped"


def test_global_options_are_accepted_after_the_command() -> None:
    args = build_parser().parse_args(["chats", "--json", "--server", "http://x"])
    assert args.json is True
    assert args.server == "http://x"
    args = build_parser().parse_args(["--json", "history", "3", "--limit", "5"])
    assert (args.json, args.chat_id, args.limit) == (True, "3", 5)
    args = build_parser().parse_args(["chat", "create", "--group", "T", "--member", "a", "b"])
    assert (args.group, args.member) == ("T", ["a", "b"])
