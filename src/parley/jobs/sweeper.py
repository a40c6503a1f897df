"""Jobs and previews whose worker is gone: run them again, or fail them after a long while.

`sweep` runs in the relay's housekeeping (the leading `parley serve` process, every few
seconds): a running job whose heartbeat stopped is queued again at once (its attempt
counts), so a killed worker's jobs resume within seconds instead of waiting for the broker
to redeliver them; a preview still pending long after every retry could have run is failed.
`requeue_unsent` is for the in-memory broker, whose messages die with the process: at start
it queues again whatever is still unfinished.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import func, select, update

from parley.db.base import utcnow
from parley.jobs.context import JobContext
from parley.jobs.dispatch import PARSE_TASK, PREVIEW_TASK
from parley.jobs.events import emit_job
from parley.jobs.models import Job, MessagePreview
from parley.jobs.previews import write_back_preview
from parley.ops.metrics import JOB_OUTCOMES
from parley.outbox import enqueue

log = structlog.get_logger("parley.jobs.sweeper")

BATCH = 500
WORKER_GONE = "the worker running this job stopped"


async def sweep(ctx: JobContext) -> int:
    """Requeue abandoned jobs and fail stale previews; returns how many were handled."""
    return await requeue_abandoned(ctx) + await fail_stale_previews(ctx)


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


async def fail_stale_previews(ctx: JobContext) -> int:
    """Fail previews still pending long after every attempt could have run."""
    cutoff = utcnow() - timedelta(seconds=ctx.limits.preview_stale_after)
    async with ctx.db.session() as session:
        previews = (
            await session.execute(
                select(MessagePreview.message_id, MessagePreview.url)
                .where(MessagePreview.status == "pending", MessagePreview.updated_at < cutoff)
                .limit(BATCH)
            )
        ).all()
    for message_id, url in previews:
        async with ctx.db.session() as session:
            await write_back_preview(session, message_id, url, None)
    return len(previews)


async def requeue_unsent(ctx: JobContext) -> int:
    """Queue again every unfinished job and pending preview (the broker lost its messages).

    Jobs left `running` by the previous process go back to `queued`; their attempt counts.
    Returns how many jobs were enqueued.
    """
    async with ctx.db.session() as session:
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
        previews = (
            await session.execute(
                select(MessagePreview.message_id, MessagePreview.url).where(
                    MessagePreview.status == "pending"
                )
            )
        ).all()
        for message_id, url in previews:
            enqueue(session, PREVIEW_TASK, [message_id, url])
        await session.commit()
    if queued or previews:
        log.info("queued unfinished work again", jobs=len(queued), previews=len(previews))
    return len(queued) + len(previews)
