"""The wire format of live events, built and parsed here and nowhere else.

A client frame is one JSON object: `{"id", "type", "ts", "data"}` for a logged event,
without `id` for an ephemeral one, and a few control frames (`ready`, `resync.required`,
`pong`, `error`). An event is encoded once, as its *body* (the envelope without its id and
without the opening brace), and each user's copy gets its own id prepended. Between
processes, one *fan-out message* carries a body and the recipients (with their ids) in one
string, so that a process parses it once whatever the number of sockets it feeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from parley.db.base import utcnow

# Events that are never logged nor replayed, and carry no id.
EPHEMERAL_TYPES = frozenset({"typing", "presence"})

RESYNC_FRAME = '{"type":"resync.required"}'

# An ephemeral message for the server's own sockets, never for a client: a browser session
# has ended, and the sockets it opened close (see `realtime.connection`). It travels like
# `typing` (to the user's sockets in every process) and is recognised by its start.
SESSION_ENDED_TYPE = "parley.session.ended"
INTERNAL_MARK = "!"  # before the recipients of an internal notice's fan-out message
_SESSION_ENDED_START = '{"type":"' + SESSION_ENDED_TYPE + '"'
PONG_FRAME = '{"type":"pong"}'

# Event ids are Redis Stream ids: "<milliseconds>-<sequence>", each part an unsigned 64-bit
# integer (Redis refuses any other as an invalid stream id).
MAX_EVENT_ID_LENGTH = 48
MAX_EVENT_ID_PART = 2**64 - 1


class Frame(NamedTuple):
    """One encoded server-to-client frame, shared by every socket it goes to.

    A named tuple, not a dataclass: one is made per recipient of every event.
    """

    event_id: str | None
    text: str


def encode_body(event_type: str, data: Mapping[str, Any]) -> str:
    """The envelope without its id: `"type":...,"ts":...,"data":...}` (note: no opening brace).

    The id is prepended by whoever assigns it (the log), so one encoding serves every user.
    """
    return encode_envelope(event_type) + encode_json(data) + "}"


def encode_json(data: Any) -> str:
    """`data` as compact JSON, the way events and answers carry it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode_envelope(event_type: str) -> str:
    """The start of a body whose data is appended already encoded: `encode_body` is this,
    the data's JSON, and a closing brace."""
    return '"type":' + json.dumps(event_type) + ',"ts":"' + utcnow().isoformat() + '","data":'


def with_id(event_id: str, body: str) -> str:
    """A full frame from an id and an encoded body."""
    return '{"id":"' + event_id + '",' + body


def without_id(body: str) -> str:
    """A full frame for an ephemeral event."""
    return "{" + body


def is_session_ended(text: str) -> bool:
    """Whether an ephemeral frame is the server's own "a browser session ended" notice."""
    return text.startswith(_SESSION_ENDED_START)


def ended_session_id(text: str) -> int | None:
    """The id of the browser session a "session ended" notice names (None if unreadable)."""
    try:
        session_id = json.loads(text)["data"]["sessionId"]
    except (ValueError, KeyError, TypeError):
        return None
    return session_id if isinstance(session_id, int) else None


def ready_frame(last_event_id: str) -> str:
    """The frame that ends replay: live events follow after `last_event_id`."""
    return '{"type":"ready","data":{"lastEventId":' + json.dumps(last_event_id) + "}}"


def error_frame(detail: str) -> str:
    """A frame answering a client message the server could not use."""
    return '{"type":"error","detail":' + json.dumps(detail) + "}"


def parse_event_id(event_id: str) -> tuple[int, int] | None:
    """`"<ms>-<seq>"` as a comparable pair; None when it is not an id this server makes."""
    left, sep, right = event_id.partition("-")
    if not sep or len(event_id) > MAX_EVENT_ID_LENGTH:
        return None
    ms, seq = _id_part(left), _id_part(right)
    if ms is None or seq is None:
        return None
    return ms, seq


def _id_part(text: str) -> int | None:
    # ASCII digits only: `str.isdigit` also takes superscript, Arabic-Indic or fullwidth
    # digits, which `int` refuses or reads, and Redis refuses either way.
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_EVENT_ID_PART else None


def format_event_id(key: tuple[int, int]) -> str:
    """The id string of a comparable pair (the inverse of `parse_event_id`)."""
    return f"{key[0]}-{key[1]}"


# -- fan-out messages between processes ---------------------------------------------------
#
#   logged:     "<user>:<id>,<user>:<id>,...\n<body>"
#   ephemeral:  "<user>,<user>,...\n<body>"
#
# The Lua publish script builds the logged form; `parse_fanout` is its only reader.


@dataclass(frozen=True)
class Fanout:
    """A decoded fan-out message: who gets the body, and under which id (None: ephemeral)."""

    recipients: list[tuple[int, str | None]]
    body: str

    def frame_for(self, event_id: str | None) -> Frame:
        """The client frame of one recipient."""
        if event_id is None:
            return Frame(None, without_id(self.body))
        return Frame(event_id, with_id(event_id, self.body))


def encode_ephemeral(user_ids: Sequence[int], body: str, *, internal: bool = False) -> str:
    """The fan-out message of an ephemeral event. An internal one is marked so that a
    process that predates it finds no recipients and drops it rather than passing it on."""
    head = ",".join(str(u) for u in user_ids)
    return (INTERNAL_MARK if internal else "") + head + "\n" + body


def parse_fanout(message: str) -> Fanout | None:
    """Decode a fan-out message, an internal one too; None when it is not one (never
    raises on bad input)."""
    if message.startswith(INTERNAL_MARK):
        message = message[len(INTERNAL_MARK) :]
    head, sep, body = message.partition("\n")
    if not sep or not head:
        return None
    recipients: list[tuple[int, str | None]] = []
    for part in head.split(","):
        user, colon, event_id = part.partition(":")
        if not user.isdigit():
            return None
        recipients.append((int(user), event_id if colon else None))
    return Fanout(recipients, body)
