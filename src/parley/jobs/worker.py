"""`parley worker`: a Celery worker process for services mode."""

from __future__ import annotations

import sys
from typing import Any

from celery import signals

from parley.jobs.config import is_in_memory
from parley.jobs.limits import QUEUES
from parley.ops.logging import configure_logging
from parley.settings import get_settings


def run_worker(*, concurrency: int | None = None, queues: str | None = None) -> int:
    """Run a worker until it is stopped (SIGTERM: warm shutdown); returns the exit code.

    `queues` is a comma-separated subset of `parse,previews` (default: both); the configured
    queue prefix is added. Each pool process runs its jobs on its own event loop, database
    engine and bus.
    """
    settings = get_settings()
    configure_logging(settings)
    if is_in_memory(settings):
        print(
            "parley worker needs a broker: set PARLEY_REDIS_URL or PARLEY_BROKER_URL. "
            "Without one (embedded mode), `parley serve` runs the jobs itself.",
            file=sys.stderr,
        )
        return 2
    names = [q.strip() for q in (queues or ",".join(QUEUES)).split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown or not names:
        print(f"unknown queue(s) {unknown}; choose from {', '.join(QUEUES)}", file=sys.stderr)
        return 2

    from parley.jobs.celery_app import app

    def close_runner(**_: Any) -> None:
        app.runner.close()

    signals.worker_process_shutdown.connect(close_runner, weak=False)
    app.set_current()
    worker = app.Worker(
        concurrency=concurrency or settings.worker_concurrency,
        queues=[app.limits.queue(n) for n in names],
        loglevel=settings.log_level.upper(),
        hostname=None,
        quiet=True,
        # Jobs need neither revoked-task sync at start nor worker-to-worker gossip: the
        # job rows are the truth. (Heartbeats stay on, for Flower.)
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
