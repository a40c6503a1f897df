"""The event envelope and its ids."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parley.db.base import utcnow

# Events that are never logged nor replayed, and carry no id.
EPHEMERAL_TYPES = frozenset({"typing", "presence"})


@dataclass(frozen=True)
class Frame:
    """One encoded server-to-client frame, shared by every socket it goes to."""

    event_id: str | None
    text: str


def encode_body(event_type: str, data: Mapping[str, Any]) -> str:
    """The envelope without its id: `"type":...,"ts":...,"data":...}` (note: no opening brace).

    The id is prepended by whoever assigns it (the log), so one encoding serves every user.
    """
    body = json.dumps(
        {"type": event_type, "ts": utcnow().isoformat(), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return body[1:]


def with_id(event_id: str, body: str) -> str:
    """A full frame from an id and an encoded body."""
    return '{"id":"' + event_id + '",' + body


def without_id(body: str) -> str:
    """A full frame for an ephemeral event."""
    return "{" + body


def parse_event_id(event_id: str) -> tuple[int, int] | None:
    """`"<ms>-<seq>"` as a comparable pair; None when it is not an id this server makes."""
    left, sep, right = event_id.partition("-")
    if not sep or not left.isdigit() or not right.isdigit() or len(event_id) > 48:
        return None
    return int(left), int(right)
