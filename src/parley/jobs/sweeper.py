"""Jobs whose worker is gone: run them again, or fail them once out of attempts.

`requeue_abandoned` runs in the relay's housekeeping (the leading `parley serve` process,
every few seconds): a running job whose heartbeat stopped is queued again at once (its
attempt counts), so a killed worker's jobs resume within seconds instead of waiting for the
broker to redeliver them. `requeue_unsent` is for the in-memory broker, whose messages die
with the process: at start it queues again whatever job is still unfinished.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import func, select, update

from parley.db.base import utcnow
from parley.jobs.events import emit_job
from parley.jobs.models import Job
from parley.jobs.service import PARSE_TASK
from parley.ops.metrics import JOB_OUTCOMES
from parley.outbox import enqueue
from parley.worker import JobContext

log = structlog.get_logger("parley.jobs.sweeper")

WORKER_GONE = "the worker running this job stopped"


async def requeue_abandoned(ctx: JobContext) -> int:
    """Queue again (or, out of attempts, fail) every running job whose heartbeat stopped."""
    now = utcnow()
    cutoff = now - timedelta(seconds=ctx.limits.abandoned_after)
    stale = func.coalesce(Job.heartbeat_at, Job.started_at) < cutoff
    async with ctx.db.session() as session:
        retried = list(
            await session.scalars(
                update(Job)
                .where(Job.status == "running", stale, Job.attempts < ctx.limits.max_attempts)
                .values(status="queued", progress=0, run_at=now, error=f"{WORKER_GONE}; retrying")
                .returning(Job)
            )
        )
        failed = list(
            await session.scalars(
                update(Job)
                .where(Job.status == "running", stale, Job.attempts >= ctx.limits.max_attempts)
                .values(
                    status="failed",
                    finished_at=now,
                    error=f"{WORKER_GONE}; gave up after {ctx.limits.max_attempts} attempts",
                )
                .returning(Job)
            )
        )
        for job in retried:
            emit_job(session, job)
            enqueue(session, PARSE_TASK, [job.id])
        for job in failed:
            emit_job(session, job)
        await session.commit()
    for job in failed:
        JOB_OUTCOMES.labels(job.kind, "failed").inc()
    if retried or failed:
        log.warning("jobs of a stopped worker", requeued=len(retried), failed=len(failed))
    return len(retried) + len(failed)


async def requeue_unsent(ctx: JobContext) -> int:
    """Queue again every unfinished job (the in-memory broker lost its messages).

    Jobs left `running` by the previous process go back to `queued`; their attempt counts.
    Returns how many jobs were enqueued.
    """
    async with ctx.db.session() as session:
        unfinished = select(Job.id).where(Job.status.in_(("running", "queued"))).limit(1)
        if await session.scalar(unfinished) is None:
            # Nothing to do, and no write: on SQLite a start-up must not wait for the write
            # lock that another process's open transaction holds.
            return 0
        interrupted = list(
            await session.scalars(
                update(Job)
                .where(Job.status == "running")
                .values(status="queued", progress=0, error="interrupted by a restart")
                .returning(Job)
            )
        )
        for job in interrupted:
            emit_job(session, job)
        queued = list(await session.scalars(select(Job).where(Job.status == "queued")))
        for job in queued:
            enqueue(session, PARSE_TASK, [job.id], run_at=job.run_at)
        await session.commit()
    if queued:
        log.info("queued unfinished jobs again", jobs=len(queued))
    return len(queued)
