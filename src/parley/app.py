"""The application factory: settings, lifespan resources, routers and middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from parley import __version__
from parley.apidocs import install_docs
from parley.auth.router import router as auth_router
from parley.chats.directory import ChatDirectory
from parley.chats.router import router as chats_router
from parley.db.engine import Database
from parley.db.instance import instance_id
from parley.errors import install_error_handlers
from parley.jobs.router import router as jobs_router
from parley.ops.gc_tuning import tune_for_serving
from parley.ops.health import router as health_router
from parley.ops.logging import configure_logging
from parley.ops.metrics import metrics_endpoint
from parley.ops.middleware import RequestMiddleware
from parley.outbox.runtime import Outbox
from parley.ratelimit import open_limiter
from parley.realtime.factory import create_bus
from parley.realtime.hub import Hub
from parley.realtime.router import router as realtime_router
from parley.realtime.shutdown import close_sockets_on_signal
from parley.resources import Resources
from parley.settings import Settings, get_settings
from parley.tasks import HOUSEKEEPING, RECOVERIES, TASKS
from parley.webpage import install_web_page
from parley.worker import JobsRuntime

API_PREFIX = "/api/v1"


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Parley ASGI app. Its lifespan opens the database and the bus, and closes them."""
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        bus = create_bus(settings, await instance_id(db))
        await bus.start()
        jobs = JobsRuntime.create(settings, db, TASKS)
        housekeeping = [partial(upkeep, jobs.context) for upkeep in HOUSEKEEPING]
        outbox = Outbox.start(
            settings, db, bus, jobs.queue.send_async, with_relay=True, housekeeping=housekeeping
        )
        await jobs.start(RECOVERIES)
        directory = ChatDirectory(db, presence_group_limit=settings.presence_group_limit)
        hub = Hub(bus, directory, queue_size=settings.ws_send_queue_size)
        limiter = open_limiter(settings)
        await limiter.start()
        app.state.resources = Resources(
            settings=settings, db=db, bus=bus, hub=hub, jobs=jobs, outbox=outbox, limiter=limiter
        )
        if settings.gc_tuning:
            tune_for_serving()
        try:
            with close_sockets_on_signal(hub):
                yield
        finally:
            await hub.close_all(1001, "server shutting down")
            await jobs.stop()  # the embedded worker's last jobs still commit events
            await outbox.close()
            await limiter.close()
            await bus.close()
            await db.dispose()

    app = FastAPI(
        title="Parley",
        version=__version__,
        description="Self-hostable real-time chat with background jobs.",
        lifespan=lifespan,
        root_path=settings.root_path,
        generate_unique_id_function=_operation_id,
        debug=settings.debug,
        docs_url=None,  # served from vendored assets instead of a CDN: see parley.apidocs
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)
    app.include_router(auth_router, prefix=API_PREFIX)
    app.include_router(chats_router, prefix=API_PREFIX)
    app.include_router(jobs_router, prefix=API_PREFIX)
    app.include_router(health_router, prefix=API_PREFIX)
    app.include_router(realtime_router, prefix=API_PREFIX)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outermost: the client address and scheme, from X-Forwarded-* of trusted proxies only
    # (the rightmost forwarded address that is not one of them), for every route and limit.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    install_web_page(app)  # last: its catch-all GET route must not shadow another
    return app
