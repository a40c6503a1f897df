"""The Celery app factory: one definition for `parley worker`, Flower and `parley serve`."""

from __future__ import annotations

from celery import Celery

from parley.jobs.config import celery_config
from parley.jobs.context import ProcessLoopRunner, TaskRunner
from parley.jobs.dispatch import JobQueue
from parley.jobs.limits import JobLimits
from parley.settings import Settings


class ParleyCelery(Celery):
    """A Celery app that knows Parley's settings, limits, queue and where tasks run."""

    settings: Settings
    limits: JobLimits
    job_queue: JobQueue
    runner: TaskRunner


def create_celery(settings: Settings, runner: TaskRunner | None = None) -> ParleyCelery:
    """A configured Celery app with Parley's tasks registered.

    `runner` decides where task coroutines run; by default one event loop per worker
    process (`parley worker`). `parley serve` passes its own loop for the embedded worker.
    """
    from parley.jobs.tasks import register_tasks

    limits = JobLimits.from_settings(settings)
    app = ParleyCelery("parley", set_as_current=False)
    app.conf.update(celery_config(settings, limits))
    app.settings = settings
    app.limits = limits
    app.job_queue = JobQueue(app, limits)
    app.runner = runner or ProcessLoopRunner(settings, app.job_queue.send_async)
    register_tasks(app)
    return app
