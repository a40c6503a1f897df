"""The application factory: settings, lifespan resources, routers and middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse

from parley.apidocs import install_docs
from parley.asgi import install_edge_middleware, install_socket_lane, new_app
from parley.auth import passwords
from parley.auth.liveness import BrowserSessions
from parley.auth.router import router as auth_router
from parley.billing.hooks_router import router as billing_hooks_router
from parley.billing.limits import enforce_plan_limits
from parley.billing.router import router as billing_router
from parley.billing.web import stripe_csp_sources
from parley.chats.directory import ChatDirectory
from parley.chats.router import router as chats_router
from parley.db.engine import Database
from parley.db.instance import instance_id
from parley.jobs.router import router as jobs_router
from parley.ops.gc_tuning import tune_for_serving
from parley.ops.health import router as health_router
from parley.ops.metrics import metrics_endpoint
from parley.outbox.runtime import Outbox
from parley.ratelimit import open_limiter
from parley.realtime.factory import create_bus
from parley.realtime.hub import Hub
from parley.realtime.router import SOCKET_PATH, websocket_events
from parley.realtime.router import router as realtime_router
from parley.realtime.shutdown import close_sockets_on_signal
from parley.resources import Resources
from parley.settings import Settings, get_settings
from parley.tasks import HOUSEKEEPING, RECOVERIES, TASKS
from parley.webpage import install_web_page
from parley.worker import JobsRuntime

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Parley ASGI app. Its lifespan opens the database and the bus, and closes them."""
    settings = settings or get_settings()
    passwords.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        if settings.billing_enabled:
            enforce_plan_limits(db)
        bus = create_bus(settings, await instance_id(db))
        await bus.start()
        jobs = JobsRuntime.create(settings, db, TASKS)
        housekeeping = [partial(upkeep, jobs.context) for upkeep in HOUSEKEEPING]
        outbox = Outbox.start(
            settings, db, bus, jobs.queue.send_async, with_relay=True, housekeeping=housekeeping
        )
        await jobs.start(RECOVERIES)
        directory = ChatDirectory(db, presence_group_limit=settings.presence_group_limit)
        hub = Hub(bus, directory, BrowserSessions(db), queue_size=settings.ws_send_queue_size)
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

    app = new_app(
        settings,
        lifespan=lifespan,
        title="Parley",
        description="Self-hostable real-time chat with background jobs.",
        docs_url=None,  # served from vendored assets instead of a CDN: see parley.apidocs
        redoc_url=None,
    )
    install_docs(app)
    # Chats first: routes are matched in order, and the send route is the hot one.
    app.include_router(chats_router, prefix=API_PREFIX)
    app.include_router(auth_router, prefix=API_PREFIX)
    app.include_router(jobs_router, prefix=API_PREFIX)
    app.include_router(health_router, prefix=API_PREFIX)
    app.include_router(realtime_router, prefix=API_PREFIX)
    app.include_router(billing_router, prefix=API_PREFIX)
    app.include_router(billing_hooks_router)  # also served alone by `parley hooks`
    app.add_api_route(
        "/metrics",
        metrics_endpoint,
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "this process's metrics, in Prometheus text format"}},
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    install_edge_middleware(app, settings)
    install_socket_lane(app, API_PREFIX + SOCKET_PATH, websocket_events, settings)
    # Last: its catch-all GET route must not shadow another. Stripe.js only with billing on.
    install_web_page(app, csp_sources=stripe_csp_sources(settings))
    return app
