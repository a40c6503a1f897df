"""The wire form of a job, and its `job.updated` event to the job's owner alone."""

from __future__ import annotations

from typing import Any

from parley.jobs.models import Job
from parley.jobs.schemas import JobOut
from parley.realtime.publisher import EventPublisher


def job_json(job: Job) -> dict[str, Any]:
    """The Job JSON exactly as `GET /jobs/{id}` answers it."""
    return JobOut.model_validate(job).model_dump(mode="json", by_alias=True)


async def publish_job(bus: EventPublisher, job: Job) -> None:
    """Tell the owner's sockets that `job` changed. Call only after the change is committed."""
    await bus.publish([job.user_id], "job.updated", job_json(job))
