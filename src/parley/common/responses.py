"""What an error answer looks like in the OpenAPI document: one schema, every status.

Routes declare the statuses they can answer with `errors(...)`; each is documented with
`ErrorOut` (`detail` is a sentence, or FastAPI's list of validation errors) and the headers
it carries, so a client generated from the document can parse every error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ValidationIssue(BaseModel):
    """One thing wrong with the request (FastAPI/Pydantic's validation error)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    """Every error answer: `detail` says what went wrong."""

    detail: str | list[ValidationIssue] = Field(
        description="a sentence, or (422) the list of what is wrong with the request"
    )


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_DESCRIPTIONS: dict[int, tuple[str, dict[str, Any] | None]] = {
    400: ("not allowed in this state", None),
    401: (
        "not authenticated",
        {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    402: ("over a limit of the caller's plan", None),
    403: ("not allowed (or missing X-CSRF-Token with a session cookie)", None),
    404: ("missing, or not visible to the caller", None),
    409: ("clashes with the current state", None),
    413: ("the request body is too large", None),
    422: ("the request is invalid", None),
    426: (
        "not a WebSocket handshake",
        {"Upgrade": {"description": "websocket", "schema": {"type": "string"}}},
    ),
    429: ("rate limited", _RETRY_AFTER),
    503: ("a dependency is unavailable", _RETRY_AFTER),
}


def errors(
    *statuses: int, ok: dict[int, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of these error statuses (and of other successes, `ok`)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, response in (ok or {}).items():
        out[status] = response
    for status in statuses:
        description, headers = _DESCRIPTIONS[status]
        out[status] = {"model": ErrorOut, "description": description}
        if headers:
            out[status]["headers"] = headers
    return out


# What every route can answer: invalid input, a body over the size limit, an outage.
ANY_ROUTE = (413, 422, 503)
# What a route that needs a signed-in caller adds.
SIGNED_IN = (401, 403)


def links(**targets: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI links from a response's `id` to operations taking it as a path parameter:
    `links(chat_id=("get_chat", ...))`, so that clients (and Schemathesis) can follow them."""
    return {
        f"{operation}_{param}": {
            "operationId": operation,
            "parameters": {param: "$response.body#/id"},
        }
        for param, operations in targets.items()
        for operation in operations
    }
