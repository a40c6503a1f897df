"""The Celery app factory: one definition for `parley worker`, Flower and `parley serve`.

It turns the domains' task specs into Celery tasks: each runs its async work through the
app's runner, reports running out of time, and is delivered again when its work asks for
it (a retry after a transient failure, or a hop towards a run time further than an ETA may
reach). Every log line of a task names it and the arguments its spec names (its job).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import SoftTimeLimitExceeded

from parley.db.base import utcnow
from parley.ops.logging import bind_task_fields, name_task_arguments, reset_task_fields
from parley.settings import Settings
from parley.worker._config import celery_config
from parley.worker._context import ProcessLoopRunner, TaskRunner
from parley.worker._limits import JobLimits
from parley.worker._outcomes import Outcome, RunLater
from parley.worker._queue import JobQueue, capped_eta
from parley.worker._spec import QueueNames, TaskCall, TaskSpec, queues_of

NOOP_TASK = "parley.noop"


class ParleyCelery(Celery):
    """A Celery app that knows Parley's settings, limits, tasks, queue and runner."""

    settings: Settings
    limits: JobLimits
    tasks_specs: tuple[TaskSpec, ...]
    queue_names: QueueNames
    job_queue: JobQueue
    runner: TaskRunner

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues of this app's tasks (unprefixed)."""
        return queues_of(self.tasks_specs)


class RetryableJobError(Exception):
    """A transient failure; the task runs again after a backoff."""


def create_celery(
    settings: Settings, tasks: Sequence[TaskSpec], runner: TaskRunner | None = None
) -> ParleyCelery:
    """A configured Celery app running `tasks` (plus a no-op, the floor of Celery's cost).

    `runner` decides where task coroutines run; by default one event loop per worker
    process (`parley worker`). `parley serve` passes its own loop for the embedded worker.
    """
    limits = JobLimits.from_settings(settings)
    names = QueueNames(settings.job_queue_prefix)
    noop = TaskSpec(NOOP_TASK, queues_of(tasks)[0], (), _noop)
    specs = (*tasks, noop)
    app = ParleyCelery("parley", set_as_current=False)
    app.conf.update(celery_config(settings, limits, specs, names))
    app.settings = settings
    app.limits = limits
    app.tasks_specs = tuple(tasks)
    app.queue_names = names
    app.job_queue = JobQueue(app, limits, specs, names)
    app.runner = runner or ProcessLoopRunner(settings, app.job_queue.send_async)
    for spec in tasks:
        _define(app, spec)
        name_task_arguments(spec.name, spec.arguments)
    app.task(name=NOOP_TASK, shared=False)(_noop_task)
    return app


def _define(app: ParleyCelery, spec: TaskSpec) -> None:
    options: dict[str, Any] = {
        "shared": False,  # each app (several in one test process) keeps its own tasks
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "time_limit": app.limits.time_limit,
        "soft_time_limit": app.limits.soft_time_limit,
        "max_retries": None,  # attempts are counted and capped by the job code
    }

    @app.task(name=spec.name, **options)
    def run(self: Task[Any, Any], *args: Any) -> None:
        call = TaskCall(
            args=args,
            attempt=self.request.retries + 1,
            redelivered=bool((self.request.delivery_info or {}).get("redelivered")),
        )
        try:
            outcome = app.runner.run(lambda ctx: spec.run(ctx, call))
        except SoftTimeLimitExceeded:
            if spec.on_time_limit is not None:
                handler = spec.on_time_limit
                app.runner.run(lambda ctx: handler(ctx, call))
            return
        _follow(app, self, outcome, list(args))

    run.__doc__ = f"Run the {spec.name} task."


def _follow(app: ParleyCelery, task: Task[Any, Any], outcome: Outcome, args: list[Any]) -> None:
    """Deliver the task again when the outcome asks for it: a retry, or a hop to run_at."""
    if not isinstance(outcome, RunLater):
        return
    eta = capped_eta(outcome.at, app.limits) or utcnow()
    if outcome.error is not None:
        raise task.retry(exc=RetryableJobError(outcome.error), eta=eta, max_retries=None)
    task.apply_async(args=tuple(args), eta=eta)


async def _noop(ctx: Any, call: TaskCall) -> Outcome:  # pragma: no cover - never run
    raise NotImplementedError


def _noop_task() -> None:
    """Do nothing: the floor of Celery's own cost, for benchmarks and smoke checks."""


# The log fields bound for each task running in this process, by task id.
_bound: dict[str, Mapping[str, contextvars.Token[Any]]] = {}


@signals.task_prerun.connect(weak=False, dispatch_uid="parley.worker.bind_log_fields")
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


@signals.task_postrun.connect(weak=False, dispatch_uid="parley.worker.reset_log_fields")
def _reset_log_fields(task_id: str | None = None, **_: Any) -> None:
    """Unbind what `_bind_log_fields` bound: the next task of this thread starts clean."""
    tokens = _bound.pop(task_id, None) if task_id is not None else None
    if tokens is not None:
        reset_task_fields(tokens)
