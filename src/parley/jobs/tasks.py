"""The jobs domain's background task: one attempt of a parse job (a thin wrapper)."""

from __future__ import annotations

from parley.jobs import service
from parley.worker import JobContext, Outcome, TaskCall, TaskSpec


async def _attempt(ctx: JobContext, call: TaskCall) -> Outcome:
    (job_id,) = call.args
    return await service.run_parse_job(ctx, int(job_id), redelivered=call.redelivered)


async def _out_of_time(ctx: JobContext, call: TaskCall) -> None:
    (job_id,) = call.args
    error = f"the job did not finish within {ctx.limits.soft_time_limit:g} s"
    await service.fail_job(ctx, int(job_id), error)


PARSE = TaskSpec(
    name=service.PARSE_TASK,
    queue=service.PARSE_QUEUE,
    arguments=("job_id",),
    run=_attempt,
    on_time_limit=_out_of_time,
)
