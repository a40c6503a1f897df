"""Celery's configuration, derived from Parley's settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kombu import Exchange, Queue

from parley.settings import Settings
from parley.worker._limits import JobLimits
from parley.worker._spec import QueueNames, TaskSpec, queues_of

IN_MEMORY_BROKER = "memory://localhost//"
# The embedded worker polls the in-memory broker this often (it has no way to block).
MEMORY_POLL_SECONDS = 0.05


def broker_url(settings: Settings) -> str:
    """PARLEY_BROKER_URL, else PARLEY_REDIS_URL, else the in-process memory broker."""
    url = settings.effective_broker_url
    return IN_MEMORY_BROKER if url.startswith("memory:") else url


def is_in_memory(settings: Settings) -> bool:
    """True when jobs go through the in-process broker: the worker must run in this process."""
    return broker_url(settings).startswith("memory:")


def _transport_options(url: str, limits: JobLimits) -> dict[str, Any]:
    if url.startswith(("redis", "rediss")):
        return {
            # A message a dead worker took is handed out again after this long.
            "visibility_timeout": limits.visibility_timeout,
            "unacked_restore_interval": max(1.0, min(10.0, limits.visibility_timeout / 6)),
            "unacked_restore_throttle": 1,
        }
    if url.startswith("memory"):
        return {"polling_interval": MEMORY_POLL_SECONDS}
    if url.startswith(("amqp", "pyamqp")):
        return {"confirm_publish": True}
    return {}


def celery_config(
    settings: Settings, limits: JobLimits, tasks: Sequence[TaskSpec], names: QueueNames
) -> dict[str, Any]:
    """Celery settings: JSON only, late acks, the tasks' queues and routes, time limits."""
    url = broker_url(settings)
    queues = [
        Queue(names(q), Exchange(names(q), type="direct"), routing_key=names(q))
        for q in queues_of(tasks)
    ]
    default = names(queues_of(tasks)[0])
    return {
        "broker_url": url,
        "broker_transport_options": _transport_options(url, limits),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4.0,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        # The job row is the truth about a job: no result backend is needed.
        "task_ignore_result": True,
        # A message is acknowledged when its task is done, and requeued if the process
        # running it dies: a killed worker's job runs again.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_queues": queues,
        "task_default_queue": default,
        "task_default_exchange": default,
        "task_default_routing_key": default,
        "task_routes": {task.name: {"queue": names(task.queue)} for task in tasks},
        "task_time_limit": limits.time_limit,
        "task_soft_time_limit": limits.soft_time_limit,
        # Task events are for Flower and `celery events`. Workers send them only once asked
        # to (`celery control enable_events`), which Flower does by itself while it runs:
        # three events a task cost ~0.35 ms of a worker's CPU with nobody listening.
        "worker_send_task_events": False,
        # Flower sees a task once a worker has it; a "task-sent" event for each job would
        # cost the sender a broker publish (~40% of a send's CPU) with nobody listening.
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "timezone": "UTC",
    }
