"""Prometheus metrics, defined once per process."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "parley_http_requests_total",
    "HTTP requests handled, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "parley_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# The multiprocess modes apply only where metrics are collected across processes (`parley
# worker --metrics-port`): what the live processes hold, summed; the latest queue sample.
WS_OPEN = Gauge(
    "parley_ws_connections",
    "WebSocket connections open in this process.",
    multiprocess_mode="livesum",
)
EVENTS_PUBLISHED = Counter(
    "parley_events_published_total", "Events published, per recipient user.", ["type"]
)


class FrameTally:
    """A counter bumped once per socket per event: a plain integer, read on scrape.

    prometheus-client's `Counter.inc` takes a lock, which costs 4% of a server's CPU when
    it runs for every delivery of a large fan-out; here only the event loop's thread counts.
    """

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The metric as Prometheus reads it."""
        yield CounterMetricFamily(self.name, self.documentation, value=self.value)


EVENTS_DELIVERED = FrameTally(
    "parley_events_delivered", "Event frames written to sockets of this process."
)
REGISTRY.register(EVENTS_DELIVERED)
WS_DROPPED = Counter(
    "parley_ws_slow_consumers_total", "Sockets closed because they fell too far behind."
)
JOB_OUTCOMES = Counter(
    "parley_jobs_finished_total", "Background jobs that reached a final status.", ["kind", "status"]
)
QUEUE_DEPTH = Gauge(
    "parley_job_queue_depth",
    "Jobs waiting in the broker, by queue (sampled on scrape).",
    ["queue"],
    multiprocess_mode="mostrecent",
)


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus exposition of this process's metrics."""
    resources = getattr(request.app.state, "resources", None)
    if resources is not None:
        await resources.jobs.refresh_metrics()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
