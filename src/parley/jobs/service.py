"""The rules of parse jobs: create, list, cancel, and run one attempt in a worker.

The job row is the truth. A run claims its job with one conditional UPDATE (queued, or
running but abandoned, and due), and every later write of that run is fenced by the
`attempts` value it claimed: a run that lost its job to a redelivery changes nothing.
Each change carries its `job.updated` event in the same transaction (the outbox), and a
running attempt renews the job's heartbeat, by which a dead worker's job is found soon.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth.models import User
from parley.billing import Limit, check_limit, plan_limits_enforced
from parley.common.errors import Conflict, NotFound, Unauthorized
from parley.db.base import utcnow
from parley.db.engine import Database
from parley.jobs import statements
from parley.jobs.events import emit_job, job_json
from parley.jobs.models import FINISHED_STATUSES, Job
from parley.jobs.pages import (
    ParsedPage,
    fetch_and_parse,
    recent_page,
    recent_page_id,
    store_page,
)
from parley.jobs.progress import PROGRESS, ProgressReporter
from parley.ops.metrics import JOB_OUTCOMES
from parley.outbox import enqueue
from parley.parser import FetchError
from parley.realtime.codec import encode_json
from parley.worker import DONE, JobContext, Outcome, RunLater

log = structlog.get_logger("parley.jobs")

JOB_NOT_FOUND = "job not found"
GONE = "invalid or expired token"
PARSE_TASK = "parley.parse_page"
PARSE_QUEUE = "parse"


# -- the API side -------------------------------------------------------------------------


async def create_parse_job(db: Database, *, user_id: int, url: str, run_at: datetime | None) -> str:
    """Record a parse job and enqueue it to run at `run_at` (now when absent or past);
    returns the Job's JSON.

    The job, its event and its enqueue commit together: a broker that is down delays the
    job (the relay sends it once the broker is back), it never loses it. Over the plan's
    parse jobs a day (the last 24 hours): PaymentRequired. A user who is gone (a token that
    outlived them): Unauthorized.
    """
    now = utcnow()
    due = max(run_at or now, now).astimezone(UTC)
    if statements.applies(db) and not plan_limits_enforced(db):  # one statement: no limit
        created = await statements.create_queued(
            db, user_id=user_id, url=url, run_at=due, now=now, task=PARSE_TASK
        )
        if created is None:
            raise Unauthorized(GONE)
        return created
    async with db.session() as session:
        if await session.get(User, user_id) is None:
            raise Unauthorized(GONE)
        await check_limit(
            session,
            user_id,
            Limit.PARSE_JOBS_PER_DAY,
            lambda: _jobs_in_a_day(session, user_id, now),
            serialize=(User.id, user_id),
        )
        job = Job(user_id=user_id, kind="parse", url=url, run_at=due)
        job.created_at = now
        session.add(job)
        await session.flush()
        emit_job(session, job)
        enqueue(session, PARSE_TASK, [job.id], run_at=job.run_at)
        await session.commit()
        return encode_json(job_json(job))


async def _jobs_in_a_day(session: AsyncSession, user_id: int, now: datetime) -> int:
    """The user's parse jobs of the last 24 hours, counting the one being created."""
    since = now - timedelta(days=1)
    count = await session.scalar(
        select(func.count()).where(Job.user_id == user_id, Job.created_at > since)
    )
    return int(count or 0) + 1


async def list_jobs(
    session: AsyncSession, user_id: int, *, before_id: int | None, limit: int
) -> list[Job]:
    """The caller's jobs, newest first, older than `before_id`."""
    stmt = select(Job).where(Job.user_id == user_id).order_by(Job.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    return list(await session.scalars(stmt))


async def get_job(session: AsyncSession, job_id: int, user_id: int) -> Job:
    """The caller's job; NotFound for a missing job and for anyone else's."""
    job = await session.get(Job, job_id)
    if job is None or job.user_id != user_id:
        raise NotFound(JOB_NOT_FOUND)
    return job


async def cancel_job(session: AsyncSession, job_id: int, user_id: int) -> Job:
    """Cancel a queued job; Conflict once it is running or finished."""
    cancelled: Job | None = await session.scalar(
        update(Job)
        .where(Job.id == job_id, Job.user_id == user_id, Job.status == "queued")
        .values(status="cancelled", finished_at=utcnow())
        .returning(Job)
    )
    if cancelled is None:
        await session.rollback()
        job = await get_job(session, job_id, user_id)
        raise Conflict(f"the job is already {job.status}")
    _changed(session, cancelled)
    await session.commit()
    return cancelled


# -- the worker side ----------------------------------------------------------------------


async def run_parse_job(ctx: JobContext, job_id: int, *, redelivered: bool = False) -> Outcome:
    """Run one attempt of job `job_id`, if it is due and nobody else is running it.

    `redelivered` is true when the broker delivers this message again because the worker
    that had it died: a job left `running` by it may then be taken over at once.
    Returns what the task should do next: nothing, or run again at the job's run time.
    """
    now = utcnow()
    job = None
    if statements.applies(ctx.db):  # the usual course in single statements, if it is one
        job = await statements.claim_queued(
            ctx.db,
            job_id,
            now=now,
            max_attempts=ctx.limits.max_attempts,
            page_cache=ctx.limits.page_cache,
        )
        if job is not None:
            _count(job)
    if job is None:
        async with ctx.db.session() as session:
            claimed = await _claim(session, ctx, job_id, now=now, redelivered=redelivered)
            if claimed is None:
                return await _not_claimed(session, ctx, job_id, now=now, redelivered=redelivered)
            job, page_id = claimed
            if page_id is not None:  # fetched less than page_cache ago: reuse it
                job.status, job.progress, job.page_id = "succeeded", PROGRESS["done"], page_id
                job.finished_at = utcnow()
            _changed(session, job)
            await session.commit()
    if job.status == "succeeded":
        return DONE
    return await _attempt(ctx, job)


def _abandoned(ctx: JobContext, now: datetime) -> Any:
    """A running job whose heartbeat stopped: its worker is gone."""
    cutoff = now - timedelta(seconds=ctx.limits.abandoned_after)
    return and_(Job.status == "running", func.coalesce(Job.heartbeat_at, Job.started_at) < cutoff)


async def _claim(
    session: AsyncSession, ctx: JobContext, job_id: int, *, now: datetime, redelivered: bool
) -> tuple[Job, int | None] | None:
    """Claim the job (see the module docstring); with it, in the same statement, the id of
    a page of its URL recent enough to be reused (`recent_page`), if any."""
    takeover = Job.status == "running" if redelivered else _abandoned(ctx, now)
    # SQLite writes RETURNING's columns unqualified, which would turn the subquery's
    # `pages.url = jobs.url` into `url = url`: there the page is looked up afterwards.
    on_postgres = session.get_bind().dialect.name == "postgresql"
    recent = recent_page_id(Job.url, ctx.limits.page_cache) if on_postgres else None
    row = (
        await session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.run_at <= now,
                Job.attempts < ctx.limits.max_attempts,
                or_(Job.status == "queued", takeover),
            )
            .values(
                status="running",
                attempts=Job.attempts + 1,
                progress=PROGRESS["fetching"],
                started_at=now,
                heartbeat_at=now,
                finished_at=None,
                error=None,
            )
            .returning(Job, recent if recent is not None else null())
        )
    ).first()
    if row is None:
        return None
    job, page_id = row
    if not on_postgres:
        page = await recent_page(session, job.url, ctx.limits.page_cache)
        page_id = page.id if page is not None else None
    return job, page_id


async def _not_claimed(
    session: AsyncSession, ctx: JobContext, job_id: int, *, now: datetime, redelivered: bool
) -> Outcome:
    job = await session.get(Job, job_id)
    if job is None or job.status in FINISHED_STATUSES:
        return DONE  # cancelled, already done by another delivery, or deleted
    if job.status == "queued" and job.run_at > now:
        return RunLater(job.run_at)
    beat = job.heartbeat_at or job.started_at
    abandoned = job.status == "running" and (
        beat is None or beat < now - timedelta(seconds=ctx.limits.abandoned_after)
    )
    if job.attempts >= ctx.limits.max_attempts and (
        job.status == "queued" or redelivered or abandoned
    ):
        error = f"gave up after {job.attempts} attempts: the worker stopped while running it"
        _changed(session, await _finish(session, job_id, None, status="failed", error=error))
        await session.commit()
        return DONE
    log.info("job is running elsewhere; dropping this delivery", job_id=job_id)
    return DONE


async def _attempt(ctx: JobContext, job: Job) -> Outcome:
    reporter = ProgressReporter(
        lambda progress: _progress(ctx, job, progress),
        interval=ctx.limits.progress_interval,
        reported=job.progress,
    )

    async def on_step(step: str) -> None:
        progress = PROGRESS.get(step)
        if progress is not None:
            await reporter.advance(progress)

    heartbeat = asyncio.create_task(_beat(ctx, job))
    try:
        async with asyncio.timeout(ctx.limits.work_timeout):
            parsed = await fetch_and_parse(job.url, ctx.settings, on_step)
            await on_step("storing")
            await _succeed(ctx, job, parsed)
    except FetchError as exc:
        return await _failed_attempt(ctx, job, exc.message, transient=exc.transient)
    except TimeoutError:
        error = f"the job did not finish within {ctx.limits.work_timeout:g} s"
        return await _failed_attempt(ctx, job, error, transient=True)
    finally:
        heartbeat.cancel()
        await reporter.close()
    return DONE


async def _beat(ctx: JobContext, job: Job) -> None:
    """Renew the heartbeat of a running attempt until cancelled."""
    while True:
        await asyncio.sleep(ctx.limits.heartbeat)
        with contextlib.suppress(Exception):  # a missed beat is made up by the next one
            async with ctx.db.session() as session:
                await _fenced(session, job.id, job.attempts, heartbeat_at=utcnow())
                await session.commit()


async def _succeed(ctx: JobContext, job: Job, parsed: ParsedPage) -> None:
    """Store the page and finish the attempt as succeeded (unless it lost its job)."""
    if statements.applies(ctx.db):
        if await statements.succeed(ctx.db, job, parsed):
            _count(job)
        return
    async with ctx.db.session() as session:
        page_id = await store_page(session, parsed)
        _changed(
            session,
            await _finish(session, job.id, job.attempts, status="succeeded", page_id=page_id),
        )
        await session.commit()


async def _progress(ctx: JobContext, job: Job, progress: int) -> None:
    if statements.applies(ctx.db):
        await statements.set_progress(ctx.db, job, progress)
        return
    async with ctx.db.session() as session:
        _changed(session, await _fenced(session, job.id, job.attempts, progress=progress))
        await session.commit()


async def _failed_attempt(ctx: JobContext, job: Job, error: str, *, transient: bool) -> Outcome:
    """Requeue the job for a retry with backoff, or fail it for good."""
    async with ctx.db.session() as session:
        if transient and job.attempts < ctx.limits.max_attempts:
            retry_at = utcnow() + timedelta(seconds=ctx.limits.retry_delay(job.attempts))
            changed = await _fenced(
                session,
                job.id,
                job.attempts,
                status="queued",
                progress=PROGRESS["queued"],
                run_at=retry_at,
                error=error,
            )
            if changed is not None:
                enqueue(session, PARSE_TASK, [job.id], run_at=retry_at)
        else:
            if transient:
                error = f"{error} (gave up after {job.attempts} attempts)"
            changed = await _finish(session, job.id, job.attempts, status="failed", error=error)
        _changed(session, changed)
        await session.commit()
    if changed is not None:
        log.info("job attempt failed", job_id=job.id, attempt=job.attempts, error=error)
    return DONE


async def fail_job(ctx: JobContext, job_id: int, error: str) -> None:
    """Fail a job that is queued or running, whoever runs it (time limits, crashes)."""
    async with ctx.db.session() as session:
        _changed(session, await _finish(session, job_id, None, status="failed", error=error))
        await session.commit()


def _changed(session: AsyncSession, job: Job | None) -> Job | None:
    """Emit `job.updated` for a job this transaction changed (None: it changed nothing), and
    count it when it reached a final status."""
    if job is not None:
        emit_job(session, job)
        _count(job)
    return job


def _count(job: Job) -> None:
    """Count a job that reached a final status."""
    if job.status in FINISHED_STATUSES:
        JOB_OUTCOMES.labels(job.kind, job.status).inc()


async def _fenced(
    session: AsyncSession, job_id: int, attempt: int | None, **values: Any
) -> Job | None:
    """Update a job that is still running as attempt `attempt` (any unfinished job if None)."""
    stmt = update(Job).where(Job.id == job_id).values(**values).returning(Job)
    if attempt is None:
        stmt = stmt.where(Job.status.in_(("queued", "running")))
    else:
        stmt = stmt.where(Job.status == "running", Job.attempts == attempt)
    job: Job | None = await session.scalar(stmt)
    return job


async def _finish(
    session: AsyncSession,
    job_id: int,
    attempt: int | None,
    *,
    status: str,
    error: str | None = None,
    page_id: int | None = None,
) -> Job | None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if status == "succeeded":
        values.update(progress=PROGRESS["done"], page_id=page_id)
    if error is not None:
        values["error"] = error[:1000]
    return await _fenced(session, job_id, attempt, **values)
