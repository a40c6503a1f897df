"""Routes under /jobs and /pages."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from parley.auth.deps import CurrentUser, CurrentUserId
from parley.common.ids import PathId
from parley.common.pagination import Cursor, Limit, decode_cursor, split_page
from parley.common.responses import ANY_ROUTE, SIGNED_IN, errors, links
from parley.common.schemas import Page
from parley.deps import DatabaseDep, SessionDep
from parley.jobs import pages, service
from parley.jobs.models import Job
from parley.jobs.schemas import JobOut, PageOut, ParseJobIn

router = APIRouter(tags=["jobs"], responses=errors(*ANY_ROUTE, *SIGNED_IN))


@router.post(
    "/jobs/parse",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(
        402,
        ok={
            202: {
                "links": links(job_id=("get_job", "cancel_job")),
            }
        },
    ),
)
async def create_parse_job(body: ParseJobIn, user_id: CurrentUserId, db: DatabaseDep) -> Response:
    """Queue a job that fetches and parses `url`, now or at `runAt`."""
    created = await service.create_parse_job(db, user_id=user_id, url=body.url, run_at=body.run_at)
    # Already the answer's JSON (encoded once with the event): no second validation.
    return Response(created, status_code=status.HTTP_202_ACCEPTED, media_type="application/json")


@router.get("/jobs")
async def list_jobs(
    user: CurrentUser, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[JobOut]:
    """The caller's jobs, newest first."""
    before = decode_cursor(cursor, int)[0] if cursor else None
    jobs = await service.list_jobs(session, user.id, before_id=before, limit=limit + 1)
    kept, next_cursor = split_page(jobs, limit, _by_id)
    return Page[JobOut](items=[JobOut.model_validate(j) for j in kept], next_cursor=next_cursor)


@router.get("/jobs/{job_id:id}", responses=errors(404))
async def get_job(job_id: PathId, user: CurrentUser, session: SessionDep) -> JobOut:
    """One of the caller's jobs."""
    return JobOut.model_validate(await service.get_job(session, job_id, user.id))


@router.delete(
    "/jobs/{job_id:id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409),
)
async def cancel_job(job_id: PathId, user: CurrentUser, session: SessionDep) -> None:
    """Cancel a queued job."""
    await service.cancel_job(session, job_id, user.id)


@router.get("/pages/{page_id}", responses=errors(404))
async def get_page(page_id: PathId, user: CurrentUser, session: SessionDep) -> PageOut:
    """A page fetched by one of the caller's jobs."""
    return PageOut.model_validate(await pages.get_page(session, page_id, user.id))


def _by_id(job: Job) -> tuple[int]:
    return (job.id,)
