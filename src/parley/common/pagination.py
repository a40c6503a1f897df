"""Keyset pagination: opaque cursors, the `limit`/`cursor` query parameters, and pages.

A list route asks its service for `limit + 1` rows after the cursor's key; `split_page`
keeps `limit` of them and, when there was one more, makes the next cursor from the last one
kept.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query

from parley.common.errors import Invalid

T = TypeVar("T")

# Cursor keys are the database's own values: within its BIGINT, whatever the API's id bound.
_BIGINT_MAX = 2**63 - 1

Limit = Annotated[int, Query(ge=1, le=100, description="items per page")]
Cursor = Annotated[
    str | None, Query(max_length=256, description="`nextCursor` of the previous page")
]


def encode_cursor(*key: Any) -> str:
    """An opaque, URL-safe cursor carrying the sort key of the last item of a page."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The sort key from a cursor; Invalid (422) when it is not one this server made."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, list) or len(key) != len(types):
            raise ValueError("wrong arity")
        return tuple(_checked(value, kind) for value, kind in zip(key, types, strict=True))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise Invalid("invalid cursor") from exc


def _checked(value: Any, kind: type) -> Any:
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not an int")
        if not -_BIGINT_MAX <= value <= _BIGINT_MAX:
            raise ValueError("int out of range")  # the database driver would overflow
    if kind is str:
        if not isinstance(value, str):
            raise ValueError("not a str")
        if "\x00" in value:
            raise ValueError("NUL in a str")  # PostgreSQL refuses it
        value.encode()  # UnicodeEncodeError (a ValueError) for lone surrogates
    return value


def split_page(
    rows: Sequence[T], limit: int, key: Callable[[T], tuple[Any, ...]]
) -> tuple[Sequence[T], str | None]:
    """The `limit` items of a page out of `limit + 1` rows, and the cursor of the next page
    (made with `key` from the last item kept; None when there is no more)."""
    kept = rows[:limit]
    return kept, encode_cursor(*key(kept[-1])) if len(rows) > limit else None
