"""`parley hooks`: an app serving only the inbound webhooks (`/hooks/...`).

Webhooks get a process of their own so that a burst of them (Stripe retrying a backlog, a
batch of renewals) and slow processing never take capacity from chat traffic, and so that
the endpoint can be scaled, rate limited and monitored apart. It stores and enqueues; it
applies nothing itself (the `billing` queue's workers do), so it needs only the database
and a way to send jobs: no pub/sub subscription, no sockets, no relay (the `parley serve`
processes relay what it could not send).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from parley.asgi import install_edge_middleware, new_app
from parley.auth.liveness import BrowserSessions
from parley.billing.hooks_router import HOOKS_PREFIX
from parley.billing.hooks_router import router as billing_hooks_router
from parley.chats.directory import ChatDirectory
from parley.db.engine import Database
from parley.db.instance import instance_id
from parley.deps import ResourcesDep
from parley.ops.health import LiveOut, health_report
from parley.outbox.runtime import Outbox
from parley.ratelimit import open_limiter
from parley.realtime.factory import create_bus
from parley.realtime.hub import Hub
from parley.resources import Resources
from parley.settings import Settings, get_settings
from parley.tasks import TASKS
from parley.worker import JobsRuntime

# Webhooks are few and short: a small pool per process.
HOOKS_POOL_SIZE = 5
HOOKS_MAX_OVERFLOW = 10

health_router = APIRouter(prefix=HOOKS_PREFIX, tags=["health"])


@health_router.get("/health/live")
async def hooks_live() -> LiveOut:
    """200 while the process runs."""
    return LiveOut(status="ok")


@health_router.get("/health")
async def hooks_health(resources: ResourcesDep) -> JSONResponse:
    """200 while the database answers (a webhook is acknowledged once it is stored)."""
    return await health_report({"database": resources.db.ping})


def create_hooks_app(settings: Settings | None = None) -> FastAPI:
    """The webhook receiver's ASGI app: the same middleware, error handlers and logging as
    the API's (`parley.asgi`), and only `/hooks/...` routes."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            pool_size=min(settings.database_pool_size, HOOKS_POOL_SIZE),
            max_overflow=min(settings.database_max_overflow, HOOKS_MAX_OVERFLOW),
        )
        # Not started: this process publishes no event and listens to none; the bus only
        # claims job sends, so that a job is sent once.
        bus = create_bus(settings, await instance_id(db))
        jobs = JobsRuntime.create(settings, db, TASKS)  # sends jobs; never runs them
        outbox = Outbox.start(settings, db, bus, jobs.queue.send_async, with_relay=False)
        directory = ChatDirectory(db, presence_group_limit=settings.presence_group_limit)
        hub = Hub(
            bus, directory, BrowserSessions(db), queue_size=settings.ws_send_queue_size
        )  # no socket here
        limiter = open_limiter(settings)  # no route of its own limits; the type wants one
        await limiter.start()
        app.state.resources = Resources(
            settings=settings, db=db, bus=bus, hub=hub, jobs=jobs, outbox=outbox, limiter=limiter
        )
        try:
            yield
        finally:
            await limiter.close()
            await outbox.close()
            await jobs.stop()
            await bus.close()
            await db.dispose()

    app = new_app(
        settings,
        lifespan=lifespan,
        title="Parley webhooks",
        description="Inbound webhooks (Stripe) apart from the API.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.include_router(billing_hooks_router)
    app.include_router(health_router)
    install_edge_middleware(app, settings)
    return app
