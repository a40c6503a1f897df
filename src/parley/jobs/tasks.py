"""Celery tasks: thin wrappers that run the async job code through the app's runner."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from celery import Task, signals
from celery.exceptions import SoftTimeLimitExceeded

from parley.db.base import utcnow
from parley.jobs import previews, service
from parley.jobs.dispatch import NOOP_TASK, PARSE_TASK, PREVIEW_TASK, capped_eta
from parley.jobs.outcomes import Outcome, RunLater
from parley.ops.logging import bind_task_fields, name_task_arguments, reset_task_fields

if TYPE_CHECKING:
    from parley.jobs.factory import ParleyCelery

log = structlog.get_logger("parley.jobs.tasks")

name_task_arguments(PARSE_TASK, ["job_id"])
name_task_arguments(PREVIEW_TASK, ["message_id", "url"])

# The log fields bound for each task running in this process, by task id.
_bound: dict[str, Mapping[str, contextvars.Token[Any]]] = {}


@signals.task_prerun.connect(weak=False, dispatch_uid="parley.jobs.tasks.bind_log_fields")
def _bind_log_fields(
    task_id: str | None = None, task: Task[Any, Any] | None = None, args: Any = None, **_: Any
) -> None:
    """Every log line from here to the end of the task names it and its job.

    Bound in Celery's task signals rather than in the task body, so that Celery's own
    "succeeded" and "raised" lines, logged after the body returns, carry the fields too. The
    job code that the task runs on an event loop inherits them: the runner schedules it from
    this thread, with a copy of this thread's context.
    """
    if task_id is None or task is None:
        return
    _bound[task_id] = bind_task_fields(
        task.name, task_id, args if isinstance(args, (list, tuple)) else None
    )


@signals.task_postrun.connect(weak=False, dispatch_uid="parley.jobs.tasks.reset_log_fields")
def _reset_log_fields(task_id: str | None = None, **_: Any) -> None:
    """Unbind what `_bind_log_fields` bound: the next task of this thread starts clean."""
    tokens = _bound.pop(task_id, None) if task_id is not None else None
    if tokens is not None:
        reset_task_fields(tokens)


class RetryableJobError(Exception):
    """A transient failure; the task runs again after a backoff."""


def register_tasks(app: ParleyCelery) -> None:
    """Define Parley's tasks on `app`."""
    limits = app.limits
    job_options: dict[str, Any] = {
        "shared": False,  # each app (several in one test process) keeps its own tasks
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "time_limit": limits.time_limit,
        "soft_time_limit": limits.soft_time_limit,
        "max_retries": None,  # attempts are counted and capped by the job code
    }

    @app.task(name=PARSE_TASK, **job_options)
    def parse_page(self: Task[Any, Any], job_id: int) -> None:
        """Run one attempt of a parse job."""
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        try:
            outcome = app.runner.run(
                lambda ctx: service.run_parse_job(ctx, job_id, redelivered=redelivered)
            )
        except SoftTimeLimitExceeded:
            error = f"the job did not finish within {limits.soft_time_limit:g} s"
            app.runner.run(lambda ctx: service.fail_job(ctx, job_id, error))
            return
        _follow(app, self, outcome, [job_id])

    @app.task(name=PREVIEW_TASK, **job_options)
    def preview_link(self: Task[Any, Any], message_id: int, url: str) -> None:
        """Resolve one link preview of a message."""
        attempt = self.request.retries + 1
        try:
            outcome = app.runner.run(
                lambda ctx: previews.run_preview(ctx, message_id, url, attempt=attempt)
            )
        except SoftTimeLimitExceeded:
            app.runner.run(lambda ctx: previews.fail_preview(ctx, message_id, url))
            return
        _follow(app, self, outcome, [message_id, url])

    @app.task(name=NOOP_TASK, shared=False)
    def noop() -> None:
        """Do nothing: the floor of Celery's own cost, for benchmarks and smoke checks."""


def _follow(app: ParleyCelery, task: Task[Any, Any], outcome: Outcome, args: list[Any]) -> None:
    """Deliver the task again when the outcome asks for it: a retry, or a hop to run_at."""
    if not isinstance(outcome, RunLater):
        return
    eta = capped_eta(outcome.at, app.limits) or utcnow()
    if outcome.error is not None:
        raise task.retry(exc=RetryableJobError(outcome.error), eta=eta, max_retries=None)
    task.apply_async(args=tuple(args), eta=eta)
