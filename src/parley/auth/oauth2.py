"""RFC 6749 on the token endpoint: its grant types, and the `error` code of every refusal.

The token endpoint answers errors like every route (`{"detail": ...}` with the usual status,
see parley.errors), plus RFC 6749 §5.2's `error` (and `error_description` when the detail is
a sentence), so that OAuth2 client libraries recognise a refusal instead of storing it as a
token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.common.errors import BadRequest, Unauthorized
from parley.errors import unparsable_body

PASSWORD_GRANT = "password"  # noqa: S105 - a grant type's name, not a secret
REFRESH_TOKEN_GRANT = "refresh_token"  # noqa: S105 - a grant type's name, not a secret

ErrorCode = Literal["invalid_request", "invalid_grant", "unsupported_grant_type"]


class UnsupportedGrantType(BadRequest):
    """A `grant_type` this server does not issue tokens for (400)."""


class OAuthErrorOut(BaseModel):
    """A refusal of the token endpoint: the usual `detail` and RFC 6749's `error`."""

    detail: str | list[dict[str, Any]]
    error: ErrorCode
    error_description: str | None = None


def missing_field(name: str) -> RequestValidationError:
    """The 422 for a form field that this grant type requires, shaped like FastAPI's own."""
    return RequestValidationError(
        [{"type": "missing", "loc": ("body", name), "msg": "Field required", "input": None}]
    )


def check_not_repeated(form: FormData, names: Iterable[str]) -> None:
    """RFC 6749 §3.2: a request parameter must not be sent more than once (`invalid_request`).

    Otherwise the form's last value would silently win: `grant_type` or `username` sent
    twice, each reading a different one, is how a proxy and a server come to disagree.
    """
    for name in names:
        if len(form.getlist(name)) > 1:
            raise RequestValidationError(
                [{"type": "repeated", "loc": ("body", name), "msg": "given more than once"}]
            )


def error_code(exc: Exception) -> ErrorCode | None:
    """RFC 6749's name for why the token endpoint refused; None for other failures (429, 503)."""
    if isinstance(exc, RequestValidationError):
        return "invalid_request"
    if isinstance(exc, StarletteHTTPException) and unparsable_body(exc) is not None:
        return "invalid_request"  # a form that could not be parsed (the app answers 422)
    if isinstance(exc, UnsupportedGrantType):
        return "unsupported_grant_type"
    if isinstance(exc, Unauthorized):  # bad credentials, refresh token or one-time code
        return "invalid_grant"
    return None


class TokenEndpointRoute(APIRoute):
    """A route whose refusals carry RFC 6749's `error` beside the app's usual answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_error_codes(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                code = error_code(exc)
                if code is None:
                    raise
                return _with_error_code(await _app_answer(request, exc), code)

        return handle_with_error_codes


async def _app_answer(request: Request, exc: Exception) -> Response:
    """What the app's own exception handler answers to `exc`."""
    handlers = request.app.exception_handlers
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    response: Response = await handler(request, exc)
    return response


def _with_error_code(response: Response, code: ErrorCode) -> JSONResponse:
    body = json.loads(bytes(response.body))
    body["error"] = code
    if isinstance(body.get("detail"), str):
        body["error_description"] = body["detail"]
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("content-length", "content-type")
    }
    return JSONResponse(body, status_code=response.status_code, headers=headers)
