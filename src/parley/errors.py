"""Exception handlers: domain errors to their status, outages to 503, never a traceback."""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.common.errors import DomainError, Unavailable
from parley.db.outage import is_database_outage
from parley.webpage import allowed_methods

log = structlog.get_logger("parley.errors")


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    if exc.status_code >= 500:
        log.error("dependency unavailable", error=exc.detail[:500])
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _json_safe(value: Any) -> Any:
    """`value` with what JSON cannot carry replaced: NaN/infinity, lone surrogates."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    return value


def _describe_file(file: UploadFile) -> str:
    return f"a file ({file.filename})" if file.filename else "a file"


# Inputs echoed by description: a form field sent as a file would otherwise be echoed as
# the file object's private state (its spooled file, size limits, temporary-file options).
_NOT_ECHOED: dict[Any, Any] = {UploadFile: _describe_file}


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with the validation errors, which echo the input: it may hold NaN or bad text."""
    assert isinstance(exc, RequestValidationError)
    try:
        detail = _json_safe(jsonable_encoder(exc.errors(), custom_encoder=_NOT_ECHOED))
    except RecursionError:  # an absurdly nested input: leave it out
        detail = [
            _json_safe({k: v for k, v in e.items() if k in ("type", "loc", "msg")})
            for e in exc.errors()
        ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A connection-level failure of a dependency, raised by its driver: 503."""
    log.error("dependency unavailable", error=f"{type(exc).__name__}: {exc}"[:500])
    return await _domain_error(
        request, Unavailable("a dependency is unavailable, try again shortly")
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_database_outage(exc):
        return await _unavailable(request, exc)
    return await _unexpected(request, exc)


# FastAPI's answer to a body it cannot decode at all (bytes that are not UTF-8 JSON).
_UNPARSABLE_BODY = "There was an error parsing the body"


def unparsable_body(exc: StarletteHTTPException) -> RequestValidationError | None:
    """The framework's 400 for a body it could not parse, as the validation error it is.

    FastAPI raises it for bytes that are not JSON; Starlette for a form it cannot read (too
    many fields or files, a multipart body without a boundary or a part without a name).
    Parley itself raises no 400 of this class.
    """
    if exc.status_code != 400:
        return None
    if exc.detail == _UNPARSABLE_BODY:
        issue = {"type": "json_invalid", "loc": ("body",), "msg": "the body is not valid JSON"}
    else:
        issue = {"type": "form_invalid", "loc": ("body",), "msg": str(exc.detail)}
    return RequestValidationError([issue])


async def _http_error(request: Request, exc: Exception) -> Response:
    """Framework errors (404 no route, 405 wrong method, an unparsable body) in our shape.

    A body that cannot be parsed is invalid input like any other: 422 with a validation
    error. A 405 lists every method of the path in `Allow`, not only the first route's.
    """
    assert isinstance(exc, StarletteHTTPException)
    invalid = unparsable_body(exc)
    if invalid is not None:
        return await _invalid_request(request, invalid)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The web page's GET route matches every path, so a method it does not take at a path
        # no route has comes here as a 405; there is nothing at that path: 404.
        allowed = allowed_methods(request)
        if not allowed:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        headers["Allow"] = ", ".join(allowed)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _unavailable)
    app.add_exception_handler(OSError, _unavailable)
    app.add_exception_handler(RedisConnectionError, _unavailable)
    app.add_exception_handler(RedisTimeoutError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
