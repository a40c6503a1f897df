"""What every Parley ASGI app has, `parley serve`'s and `parley hooks`'s alike: logging, one
error family mapped once, request ids and access log, the body limit, and the client address
from trusted proxies only."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from parley import __version__
from parley.errors import install_error_handlers
from parley.ops.logging import configure_logging
from parley.ops.middleware import RequestMiddleware
from parley.settings import Settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _operation_id(route: APIRoute) -> str:
    return route.name


def new_app(settings: Settings, *, lifespan: Lifespan, **fastapi_kwargs: Any) -> FastAPI:
    """A FastAPI app with logging configured and the error handlers installed; operation
    ids are the handlers' names."""
    configure_logging(settings)
    app = FastAPI(
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
