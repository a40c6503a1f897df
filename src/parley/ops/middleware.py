"""One ASGI middleware for every request: request id, body size limit, metrics, access log."""

from __future__ import annotations

import functools
import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.ops.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("parley.access")


def bind_request_id(incoming: bytes) -> str:
    """Bind the request's id to the log lines that follow: the client's `X-Request-ID` when
    it is a sane one, else a new one. Returns it."""
    request_id = incoming.decode() if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def request_id_header(scope: Scope) -> bytes:
    """The request's `X-Request-ID` header (the last one), or b""."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    return headers.get(REQUEST_ID_HEADER, b"")


class BodyTooLarge(Exception):
    """The request body passed the configured limit while it was being read."""


class RequestMiddleware:
    """Tags each request with an id (echoed as X-Request-ID), caps its body, measures, logs."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = bind_request_id(headers.get(REQUEST_ID_HEADER, b""))
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            await self._http(scope, receive, send, headers, request_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
    ) -> None:
        started = time.perf_counter()
        status = 500
        response_started = False
        method = scope["method"]
        head = method == "HEAD"
        if head:
            # Every GET answers HEAD (RFC 9110 §9.1), but FastAPI's routes take only the
            # methods they declare: the app answers a GET, and the body is left out here.
            scope = {**scope, "method": "GET"}

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _too_large(send_wrapper, self.max_body_bytes)
        elif length.isdigit():
            # The server reads exactly Content-Length bytes: the body cannot grow past it.
            await self.app(scope, receive, send_wrapper)
        else:
            await self._capped(scope, receive, send_wrapper)

        elapsed = time.perf_counter() - started
        template = _route_template(scope)
        _requests(method, template, status).inc()
        _latency(method, template).observe(elapsed)
        log.info(
            "request",
            method=method,
            route=template,
            path=scope["path"],
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, reading a body of unknown length (chunked) up to the limit: past it the
        answer is a 413, whatever the app would have said."""
        received = 0
        over_limit = False
        app_started = False
        answered = False

        async def receive_capped() -> Message:
            nonlocal received, over_limit
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    over_limit = True
                    raise BodyTooLarge
            return message

        async def send_from_app(message: Message) -> None:
            # FastAPI catches BodyTooLarge while parsing and answers 400 itself: once the
            # body was over the limit, the app's answer is replaced by the 413.
            nonlocal app_started, answered
            if over_limit and not app_started:
                if message["type"] == "http.response.start":
                    answered = True
                    await _too_large(send, self.max_body_bytes)
                return
            if message["type"] == "http.response.start":
                app_started = True
            await send(message)

        try:
            await self.app(scope, receive_capped, send_from_app)
        except BodyTooLarge:
            if app_started:  # pragma: no cover - handlers read bodies before answering
                raise
            if not answered:
                await _too_large(send, self.max_body_bytes)


@functools.lru_cache(maxsize=4096)
def _requests(method: str, template: str, status: int) -> Any:
    """The request counter of one method, route and status (looked up once)."""
    return HTTP_REQUESTS.labels(method, template, str(status))


@functools.lru_cache(maxsize=4096)
def _latency(method: str, template: str) -> Any:
    """The latency histogram of one method and route (looked up once)."""
    return HTTP_LATENCY.labels(method, template)


def _route_template(scope: Scope) -> str:
    """The matched route's path template with its router's prefix: /api/v1/chats/{chat_id}."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if not template or regex is None:
        return "<unmatched>"
    # FastAPI may hand over an included route with its path relative to the router's
    # prefix ("/chats/{chat_id}"): the prefix is what precedes the part the route matches.
    path: str = scope["path"].removeprefix(scope.get("root_path", ""))
    for i, char in enumerate(path):
        if char == "/" and regex.match(path[i:]):
            return path[:i] + str(template)
    return str(template)


async def _too_large(send: Send, limit: int) -> None:
    body = b'{"detail":"request body larger than %d bytes"}' % limit
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
