"""`parley worker`: a Celery worker process for services mode, and its health check."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any

from celery import signals
from celery.utils.nodenames import default_nodename, host_format

from parley.jobs.config import is_in_memory
from parley.jobs.limits import QUEUES
from parley.ops.logging import configure_logging
from parley.settings import Settings, get_settings

NO_BROKER = (
    "parley worker needs a broker: set PARLEY_REDIS_URL or PARLEY_BROKER_URL. "
    "Without one (embedded mode), `parley serve` runs the jobs itself."
)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def node_name(name: str | None = None) -> str:
    """The Celery node name of a worker started with `--name name` (default celery@HOST).

    `%h` (the host name), `%n` (its first label) and `%d` (its domain) are expanded, as
    `celery worker -n` does; a name without `@` gets this host.
    """
    return host_format(default_nodename(name or ""))


def _metrics_dir() -> tuple[str, bool]:
    """The directory where every process of this worker writes its metrics, and whether
    this run created it (and removes it at the end).

    `prometheus_client` picks its multiprocess mode when it is first imported, so this runs
    before that: `PROMETHEUS_MULTIPROC_DIR` if the operator set it (they then empty it
    before each start), else a fresh temporary directory.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        return given, False
    if "prometheus_client" in sys.modules:
        raise RuntimeError("worker metrics must be set up before prometheus_client is imported")
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="parley-worker-metrics-")
    return os.environ[MULTIPROC_ENV], True


def _serve_metrics(host: str, port: int) -> None:
    """Serve the summed metrics of the main process and its pool at http://host:port/."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def run_worker(
    *,
    concurrency: int | None = None,
    queues: str | None = None,
    name: str | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
) -> int:
    """Run a worker until it is stopped (SIGTERM: warm shutdown); returns the exit code.

    `queues` is a comma-separated subset of `parse,previews` (default: both); the configured
    queue prefix is added. Each pool process runs its jobs on its own event loop, database
    engine and bus. `name` is the Celery node name (see `node_name`). With `metrics_port`,
    the job outcomes and events of every pool process are served for Prometheus at
    `http://metrics_host:metrics_port/metrics`.
    """
    settings = get_settings()
    configure_logging(settings)
    if is_in_memory(settings):
        print(NO_BROKER, file=sys.stderr)
        return 2
    names = [q.strip() for q in (queues or ",".join(QUEUES)).split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown or not names:
        print(f"unknown queue(s) {unknown}; choose from {', '.join(QUEUES)}", file=sys.stderr)
        return 2
    metrics_dir, own_metrics_dir = _metrics_dir() if metrics_port is not None else ("", False)

    from parley.jobs.celery_app import app

    def close_runner(**_: Any) -> None:
        app.runner.close()
        if metrics_port is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def start_metrics(**_: Any) -> None:
        # After the pool started: forked children must not inherit the listening socket.
        if metrics_port is not None:
            _serve_metrics(metrics_host, metrics_port)

    signals.worker_process_shutdown.connect(close_runner, weak=False)
    signals.worker_ready.connect(start_metrics, weak=False)
    app.set_current()
    worker = app.Worker(
        concurrency=concurrency or settings.worker_concurrency,
        queues=[app.limits.queue(n) for n in names],
        loglevel=settings.log_level.upper(),
        hostname=node_name(name),
        quiet=True,
        # Jobs need neither revoked-task sync at start nor worker-to-worker gossip: the
        # job rows are the truth. (Heartbeats stay on, for Flower.)
        without_mingle=True,
        without_gossip=True,
    )
    try:
        worker.start()
    finally:
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return int(worker.exitcode or 0)


def check_worker(*, name: str | None = None, timeout: float = 5.0) -> int:
    """Ping one worker through the broker; 0 if it answered within `timeout` seconds.

    For container healthchecks: `parley worker --check` asks the worker of this host
    (`celery@HOSTNAME`, what `parley worker` calls itself by default), `--name` another
    one. Prints one line either way. Exit codes: 0 answered, 1 no answer or no broker,
    2 no broker configured (embedded mode has no separate worker).
    """
    settings = get_settings()
    if is_in_memory(settings):
        print(NO_BROKER, file=sys.stderr)
        return 2
    node = node_name(name)
    started = time.monotonic()
    try:
        replies = _ping(settings, node, timeout)
    except Exception as exc:  # a broker that is down or refuses us: unhealthy, one line
        print(f"worker {node}: broker unavailable: {type(exc).__name__}: {exc}"[:300])
        return 1
    elapsed = time.monotonic() - started
    if any(node in reply for reply in replies):
        print(f"worker {node}: ok ({elapsed:.2f} s)")
        return 0
    print(f"worker {node}: no answer within {timeout:g} s")
    return 1


def _ping(settings: Settings, node: str, timeout: float) -> list[dict[str, Any]]:
    from parley.jobs.factory import create_celery

    app = create_celery(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=max(1, int(timeout)))
            replies = app.control.ping(destination=[node], timeout=timeout, connection=conn)
            return list(replies or [])
    finally:
        app.close()
