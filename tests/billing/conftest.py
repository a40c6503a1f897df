"""Billing against a real fake Stripe: localstripe, started on a free port.

- `fake_stripe`: localstripe, with the `plus` price (one per module).
- `stack`: a real `parley serve` with billing on and its own database, localstripe
  delivering webhooks to its `/hooks/stripe`, and in services mode a `parley worker`
  (embedded mode runs jobs inside `parley serve`). Users are made through its API.
- `billing_client`: the app in-process with billing on.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from parley.settings import Settings
from tests.billing.fakestripe import (
    PRICE_ID,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
)
from tests.conftest import MODE, REDIS_URL, migrated_database
from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.plugin import serving
from tests.fixtures.servers import ServerProcess, start_server
from tests.fixtures.workers import WorkerProcess, settings_env, start_worker
from tests.realtime.conftest import Api, Socket, make_user

__all__ = ["Api", "BillingStack", "Socket"]


def billing_settings(
    database_url: str, redis_url: str | None, stripe_api: str, **extra: Any
) -> Settings:
    """Test settings with billing on, against `stripe_api`."""
    return make_settings(
        database_url,
        redis_url,
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_price_id=PRICE_ID,
        stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_api_base=stripe_api,
        **extra,
    )


@pytest.fixture(scope="module")
def fake_stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripe]:
    """localstripe on a free port, with the `plus` price."""
    yield from serving(FakeStripe(tmp_path_factory.mktemp("localstripe")))


class BillingStack:
    """`parley serve` with billing on (and a `parley worker` in services mode)."""

    def __init__(
        self, settings: Settings, workdir: Path, stripe: FakeStripe, *, deliver_webhooks: bool
    ) -> None:
        self.settings = settings
        self.workdir = workdir
        self.stripe = stripe
        self.deliver_webhooks = deliver_webhooks
        self.server: ServerProcess | None = None
        self.worker: WorkerProcess | None = None

    @property
    def http(self) -> str:
        assert self.server is not None
        return self.server.http

    def start(self) -> None:
        env = settings_env(self.settings)
        env.update(PARLEY_LOG_FORMAT="json", PARLEY_LOG_LEVEL="INFO", PARLEY_AUTO_MIGRATE="false")
        self.server = start_server(env, self.workdir)
        if self.deliver_webhooks:
            self.stripe.deliver_webhooks_to(f"{self.server.http}/hooks/stripe")
        self.start_worker()

    def start_worker(self) -> None:
        """The `parley worker --queues billing` of services mode (embedded mode runs jobs
        inside the server)."""
        if MODE != "services":
            return
        self.worker = start_worker(
            self.settings, self.workdir, queues="billing", log_name="billing-worker.log"
        )

    def stop_worker(self) -> None:
        """Kill the worker (a stopped worker: its queue keeps what arrives meanwhile)."""
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    def stop(self) -> None:
        self.stop_worker()
        if self.server is not None:
            self.server.stop()

    async def user(self, name: str) -> Api:
        """A new user (the name made unique), signed in with a bearer token."""
        assert self.server is not None
        return await make_user(self.server, f"{name}{uuid.uuid4().hex[:6]}")

    async def socket(self, user: Api) -> Socket:
        """A WebSocket of `user`, past its `ready` frame."""
        from websockets.asyncio.client import connect

        assert self.server is not None
        ws = await connect(f"{self.server.ws}?token={user.token}", max_queue=None)
        return await Socket(ws).start()


@contextlib.contextmanager
def billing_stack(
    stripe: FakeStripe, tmp_path_factory: pytest.TempPathFactory, *, deliver_webhooks: bool
) -> Iterator[BillingStack]:
    """A billing-enabled server on its own database; localstripe delivers its webhooks to
    it when `deliver_webhooks` (otherwise the test sends signed events itself)."""
    redis_url = REDIS_URL if MODE == "services" else None
    workdir = tmp_path_factory.mktemp("billing")
    with migrated_database(tmp_path_factory) as database_url:
        # A new database numbers its outbox rows from 1 again: Redis must not remember
        # the rows of another one as published already.
        flush(redis_url)
        settings = billing_settings(
            database_url,
            redis_url,
            stripe.api,
            job_queue_prefix=f"bill{uuid.uuid4().hex[:8]}.",
            rate_limit_enabled=False,
        )
        billing = BillingStack(settings, workdir, stripe, deliver_webhooks=deliver_webhooks)
        try:
            billing.start()
            yield billing
        finally:
            billing.stop()
            flush(redis_url)


def flush(redis_url: str | None) -> None:
    """Empty this run's Redis database (services mode)."""
    if redis_url:
        with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
            client.flushdb()


@pytest.fixture(scope="module")
def stack(
    fake_stripe: FakeStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BillingStack]:
    """A billing-enabled server receiving localstripe's webhooks."""
    with billing_stack(fake_stripe, tmp_path_factory, deliver_webhooks=True) as billing:
        yield billing


@pytest.fixture
async def billing_client(
    database_url: str, redis_url: str | None, fake_stripe: FakeStripe
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with billing on; any 5xx fails the test."""
    settings = billing_settings(database_url, redis_url, fake_stripe.api)
    async with running_app(settings) as app, guarded_client(app) as client:
        yield client
