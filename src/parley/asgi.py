"""What every Parley ASGI app has, `parley serve`'s and `parley hooks`'s alike: logging, one
error family mapped once, request ids and access log, the body limit, and the client address
from trusted proxies only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from parley import __version__
from parley.errors import install_error_handlers
from parley.ops.logging import configure_logging
from parley.ops.middleware import RequestMiddleware, bind_request_id, request_id_header
from parley.settings import Settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
SocketEndpoint = Callable[[WebSocket], Awaitable[None]]


class ParleyAPI(FastAPI):
    """FastAPI, with lanes of their own for long-lived WebSockets.

    A socket's ASGI call lives as long as the socket, and so does every frame it passes
    through: FastAPI's and Starlette's layers (routing, exception wrappers, exit stacks, the
    HTTP-only middleware) cost ~8 KiB per open socket. A socket lane keeps only the edge
    middleware (proxy headers, request id) in front of its endpoint; the app's routes still
    list the endpoint, for a mount that does not go through here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_lanes: dict[str, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.socket_lanes:
            if self.root_path:
                scope["root_path"] = self.root_path  # as FastAPI and Starlette set them
            lane = self.socket_lanes.get(get_route_path(scope))
            if lane is not None:
                scope["app"] = self
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _operation_id(route: APIRoute) -> str:
    return route.name


def new_app(settings: Settings, *, lifespan: Lifespan, **fastapi_kwargs: Any) -> ParleyAPI:
    """A FastAPI app with logging configured and the error handlers installed; operation
    ids are the handlers' names."""
    configure_logging(settings)
    app = ParleyAPI(
        version=__version__,
        lifespan=lifespan,
        root_path=settings.root_path,
        generate_unique_id_function=_operation_id,
        debug=settings.debug,
        **fastapi_kwargs,
    )
    install_error_handlers(app)
    return app


def install_edge_middleware(app: FastAPI, settings: Settings) -> None:
    """The outer middleware, added after any other (so that they wrap it): request id,
    body limit, metrics and access log; outermost, the client address and scheme from the
    X-Forwarded-* of trusted proxies only (the rightmost forwarded address that is not one
    of them), for every route and limit."""
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)


def install_socket_lane(
    app: ParleyAPI, path: str, endpoint: SocketEndpoint, settings: Settings
) -> None:
    """Serve WebSockets at `path` by `endpoint` behind what the edge middleware does for a
    socket alone (proxy headers, request id), past the app's routing and HTTP middleware."""

    def serve(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: the caller awaits the endpoint's, one frame fewer for
        # as long as the socket is open. The request id binds to the socket's own task.
        bind_request_id(request_id_header(scope))
        return endpoint(WebSocket(scope, receive=receive, send=send))

    # uvicorn types its middleware with its own (narrower) ASGI types.
    lane: Any = ProxyHeadersMiddleware(cast(Any, serve), trusted_hosts=settings.trusted_proxy_list)
    app.socket_lanes[path] = lane
