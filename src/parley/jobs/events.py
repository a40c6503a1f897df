"""The wire form of a job, and its `job.updated` event to the job's owner alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.jobs.models import Job
from parley.jobs.schemas import JobOut
from parley.outbox import emit

JOB_UPDATED = "job.updated"


def job_json(job: Job) -> dict[str, Any]:
    """The Job JSON exactly as `GET /jobs/{id}` answers it."""
    return JobOut.model_validate(job).model_dump(mode="json", by_alias=True)


def emit_job(session: AsyncSession, job: Job) -> None:
    """Tell the owner's sockets that `job` changed, when the session's transaction commits."""
    emit(session, [job.user_id], JOB_UPDATED, job_json(job))
