"""Opaque keyset-pagination cursors."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi import HTTPException

MAX_INT = 2**63 - 1


def encode_cursor(*key: Any) -> str:
    """An opaque, URL-safe cursor carrying the sort key of the last item of a page."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The sort key from a cursor; 422 when it is not one this server made."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, list) or len(key) != len(types):
            raise ValueError("wrong arity")
        values = []
        for value, kind in zip(key, types, strict=True):
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError("not an int")
            if kind is int and not -MAX_INT <= value <= MAX_INT:
                raise ValueError("int out of range")  # the database driver would overflow
            if kind is str and not isinstance(value, str):
                raise ValueError("not a str")
            if kind is str and "\x00" in value:
                raise ValueError("NUL in a str")  # PostgreSQL refuses it
            if kind is str:
                value.encode()  # UnicodeEncodeError (a ValueError) for lone surrogates
            values.append(value)
        return tuple(values)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPException(422, "invalid cursor") from exc
