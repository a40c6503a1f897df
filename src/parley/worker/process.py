"""`parley worker`: a Celery worker process for services mode, and its health check.

Imported by the command line before anything that imports prometheus_client (the worker's
metrics need its multiprocess directory set first): this module imports the app lazily.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import signals
from celery.utils.nodenames import default_nodename, host_format

from parley.ops.logging import configure_logging
from parley.settings import Settings, get_settings
from parley.worker._config import is_in_memory
from parley.worker._spec import TaskSpec, queues_of

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


@dataclass(frozen=True)
class MetricsDir:
    """Where every process of this worker writes its metrics, and whether this run created
    the directory (and removes it at the end)."""

    path: str
    owned: bool


def prepare_metrics(port: int | None) -> MetricsDir | None:
    """With a metrics port, the worker's multiprocess metrics directory, set in the
    environment; call it before anything imports prometheus_client (the app's modules do).

    `prometheus_client` picks its multiprocess mode when it is first imported: hence here,
    first. `PROMETHEUS_MULTIPROC_DIR` if the operator set it (they then empty it before each
    start), else a fresh temporary directory.
    """
    if port is None:
        return None
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        return MetricsDir(given, owned=False)
    if "prometheus_client" in sys.modules:
        raise RuntimeError("worker metrics must be set up before prometheus_client is imported")
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="parley-worker-metrics-")
    return MetricsDir(os.environ[MULTIPROC_ENV], owned=True)


def _serve_metrics(host: str, port: int) -> None:
    """Serve the summed metrics of the main process and its pool at http://host:port/."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def run_worker(
    tasks: Sequence[TaskSpec],
    metrics_dir: MetricsDir | None = None,
    *,
    concurrency: int | None = None,
    queues: str | None = None,
    name: str | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
) -> int:
    """Run a worker until it is stopped (SIGTERM: warm shutdown); returns the exit code.

    `queues` is a comma-separated subset of the tasks' queues (default: all of them); the
    configured queue prefix is added. Each pool process runs its jobs on its own event
    loop, database engine and bus. `name` is the Celery node name (see `node_name`). With
    `metrics_port` (and `metrics_dir` from `prepare_metrics`), the job outcomes and events
    of every pool process are served for Prometheus at `http://host:port/metrics`.
    """
    try:
        return _run(tasks, metrics_dir, concurrency, queues, name, metrics_host, metrics_port)
    finally:
        if metrics_dir is not None and metrics_dir.owned:
            shutil.rmtree(metrics_dir.path, ignore_errors=True)


def _run(
    tasks: Sequence[TaskSpec],
    metrics_dir: MetricsDir | None,
    concurrency: int | None,
    queues: str | None,
    name: str | None,
    metrics_host: str,
    metrics_port: int | None,
) -> int:
    settings = get_settings()
    configure_logging(settings)
    if is_in_memory(settings):
        print(NO_BROKER, file=sys.stderr)
        return 2
    known = queues_of(tasks)
    names = [q.strip() for q in (queues or ",".join(known)).split(",") if q.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        print(f"unknown queue(s) {unknown}; choose from {', '.join(known)}", file=sys.stderr)
        return 2
    serve_metrics = metrics_port is not None and metrics_dir is not None
    from parley.worker._factory import create_celery

    app = create_celery(settings, tasks)

    def close_runner(**_: Any) -> None:
        app.runner.close()
        if serve_metrics:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def start_metrics(**_: Any) -> None:
        # After the pool started: forked children must not inherit the listening socket.
        if serve_metrics and metrics_port is not None:
            _serve_metrics(metrics_host, metrics_port)

    signals.worker_process_shutdown.connect(close_runner, weak=False)
    signals.worker_ready.connect(start_metrics, weak=False)
    app.set_current()
    worker = app.Worker(
        concurrency=concurrency or settings.worker_concurrency,
        queues=[app.queue_names(n) for n in names],
        loglevel=settings.log_level.upper(),
        hostname=node_name(name),
        quiet=True,
        # Jobs need neither revoked-task sync at start nor worker-to-worker gossip: the
        # job rows are the truth. (Heartbeats stay on, for Flower.)
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


def check_worker(
    tasks: Sequence[TaskSpec], *, name: str | None = None, timeout: float = 5.0
) -> int:
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
        replies = _ping(settings, tasks, node, timeout)
    except Exception as exc:  # a broker that is down or refuses us: unhealthy, one line
        print(f"worker {node}: broker unavailable: {type(exc).__name__}: {exc}"[:300])
        return 1
    elapsed = time.monotonic() - started
    if any(node in reply for reply in replies):
        print(f"worker {node}: ok ({elapsed:.2f} s)")
        return 0
    print(f"worker {node}: no answer within {timeout:g} s")
    return 1


def _ping(
    settings: Settings, tasks: Sequence[TaskSpec], node: str, timeout: float
) -> list[dict[str, Any]]:
    from parley.worker._factory import create_celery

    app = create_celery(settings, tasks)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=max(1, int(timeout)))
            replies = app.control.ping(destination=[node], timeout=timeout, connection=conn)
            return list(replies or [])
    finally:
        app.close()
