"""Ids as a user types them: on the command line or after a slash command."""

from __future__ import annotations


def json_id(value: str) -> int | str:
    """An id typed by the user as the JSON value the API expects: a number when it is one,
    else the text, for the server to refuse."""
    # ASCII only: str.isdigit() also takes "²" and other scripts' digits, which int() refuses
    # or reads as a number the user did not type.
    return int(value) if value.isascii() and value.isdigit() else value
