"""Jobs and previews whose worker is gone: fail them after a while, or queue them again.

`sweep_stale` runs in every worker, at start and then periodically (no beat needed). With a
broker that keeps messages (Redis, RabbitMQ) a dead worker's job is redelivered first, so
only what stays stuck beyond that is failed. `requeue_unsent` is for the in-memory broker,
whose messages die with the process: at start it queues again whatever is still unfinished.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select, update

from parley.db.base import utcnow
from parley.jobs.context import JobContext
from parley.jobs.dispatch import JobQueue
from parley.jobs.events import publish_job
from parley.jobs.models import Job, MessagePreview
from parley.jobs.previews import write_back_preview
from parley.ops.metrics import JOB_OUTCOMES

log = structlog.get_logger("parley.jobs.sweeper")

BATCH = 500


async def sweep_stale(ctx: JobContext) -> int:
    """Fail jobs `running` and previews `pending` for longer than their limits allow.

    Returns how many were failed; each gets its `job.updated` / `message.updated` event.
    """
    now = utcnow()
    job_cutoff = now - timedelta(seconds=ctx.limits.stale_after)
    error = (
        f"the worker running this job stopped: no result after "
        f"{ctx.limits.stale_after:g} s (time limit {ctx.limits.time_limit:g} s)"
    )
    async with ctx.db.session() as session:
        stale = list(
            await session.scalars(
                update(Job)
                .where(Job.status == "running", Job.started_at < job_cutoff)
                .values(status="failed", error=error, finished_at=now)
                .returning(Job)
            )
        )
        await session.commit()
    for job in stale:
        JOB_OUTCOMES.labels(job.kind, "failed").inc()
        log.warning("failed a job whose worker is gone", job_id=job.id)
        await publish_job(ctx.bus, job)

    preview_cutoff = now - timedelta(seconds=ctx.limits.preview_stale_after)
    async with ctx.db.session() as session:
        previews = (
            await session.execute(
                select(MessagePreview.message_id, MessagePreview.url)
                .where(
                    MessagePreview.status == "pending", MessagePreview.updated_at < preview_cutoff
                )
                .limit(BATCH)
            )
        ).all()
    for message_id, url in previews:
        async with ctx.db.session() as session:
            await write_back_preview(session, ctx.bus, message_id, url, None)
    return len(stale) + len(previews)


async def requeue_unsent(ctx: JobContext, queue: JobQueue) -> int:
    """Queue again every unfinished job and pending preview (the broker lost its messages).

    Jobs left `running` by the previous process go back to `queued`; their attempt counts.
    Returns how many messages were sent.
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
        await session.commit()
        queued = list(await session.scalars(select(Job).where(Job.status == "queued")))
        previews = (
            await session.execute(
                select(MessagePreview.message_id, MessagePreview.url).where(
                    MessagePreview.status == "pending"
                )
            )
        ).all()
    for job in interrupted:
        await publish_job(ctx.bus, job)
    for job in queued:
        await queue.parse(job.id, job.run_at)
    for message_id, url in previews:
        await queue.preview(message_id, url)
    if queued or previews:
        log.info("queued unfinished work again", jobs=len(queued), previews=len(previews))
    return len(queued) + len(previews)
