"""A parse job's usual course on PostgreSQL, each change in one statement.

Through the ORM, each change of a job (its creation, its claim, a progress step, its
success) was a transaction of four or five round trips (BEGIN, the INSERT or UPDATE, the
outbox INSERT, COMMIT): the larger part of a worker's CPU outside extraction, and of the
server's for a job. Here each change is one
statement run outside a transaction (see `db.driver`), made of data-modifying CTEs: the row
changes only if it is still in the state the worker knows, and the `job.updated` event is
inserted only if it did, so the outbox's promise holds as before. The event's body is
encoded in Python from what the worker knows: the fields fixed when the job was created,
read just before the claim, and the values it writes.

Only the usual course is here: creating a job where no plan limit is checked, claiming a
queued job, its steps, its success. Everything else (a limit to check, a takeover, a retry,
a failure, a job that is not as it was read) takes the ORM path of `service`, which holds
every rule; these statements are the same rules for that course.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    exists,
    func,
    literal,
    null,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from parley.auth.models import User
from parley.db.base import UTCDateTime, utcnow
from parley.db.driver import DriverQuery, runs_on_driver
from parley.db.engine import Database
from parley.jobs.events import JOB_UPDATED, job_json
from parley.jobs.models import Job, Page
from parley.jobs.pages import ParsedPage, page_values
from parley.jobs.progress import PROGRESS
from parley.outbox import EVENT, JOB, OutboxRow, Pending, publish_committed
from parley.realtime.codec import encode_body, encode_envelope, encode_json

_jobs = cast(Table, Job.__table__)
_users = cast(Table, User.__table__)
_pages = cast(Table, Page.__table__)
_outbox = cast(Table, OutboxRow.__table__)

# Stands for an id (the job's, a page's) in JSON encoded before the id is known; the
# statement fills it in. No other value of a job's JSON can hold `"key":-1`.
_ID_HOLE = -1
_ID_KEY = '"id":'
_PAGE_ID_KEY = '"pageId":'


def _split_at(encoded: str, key: str, hole: int) -> tuple[str, str]:
    """`encoded` cut where the value `hole` of `key` stands: (up to the value, after it)."""
    head, tail = encoded.split(f"{key}{hole}", 1)
    return head + key, tail


def applies(db: Database) -> bool:
    """True where these statements run (PostgreSQL); elsewhere the ORM path does it all."""
    return runs_on_driver(db.engine)


async def create_queued(
    db: Database, *, user_id: int, url: str, run_at: datetime, now: datetime, task: str
) -> str | None:
    """Record a queued parse job for `user_id`, due at `run_at`, with its event and its
    task: one round trip. Returns the job's JSON (as `GET /jobs/{id}` answers it), or None
    when the user does not exist (a token that outlived its user)."""
    job = Job(
        id=_ID_HOLE,
        user_id=user_id,
        kind="parse",
        url=url,
        status="queued",
        progress=PROGRESS["queued"],
        attempts=0,
        error=None,
        run_at=run_at,
        created_at=now,
        started_at=None,
        finished_at=None,
        page_id=None,
    )
    head, tail = _split_at(encode_json(job_json(job)), _ID_KEY, _ID_HOLE)
    envelope = encode_envelope(JOB_UPDATED)
    params = {
        "user_id": user_id,
        "url": url,
        "run_at": run_at,
        "now": now,
        "recipients": [user_id],
        "head": envelope + head,
        "tail": tail + "}",
        "task": task,
    }
    row = await _create(db.engine.dialect).fetchrow(db.engine, params)
    if row is None:
        return None
    job_id = row["job_id"]
    answer = f"{head}{job_id}{tail}"
    await publish_committed(
        db,
        [
            Pending(row["event_id"], EVENT, JOB_UPDATED, (user_id,), envelope + answer + "}"),
            Pending(row["task_id"], JOB, task, (), f"[{job_id}]", run_at),
        ],
    )
    return answer


async def claim_queued(
    db: Database, job_id: int, *, now: datetime, max_attempts: int, page_cache: float
) -> Job | None:
    """Claim job `job_id` if it is queued, due and has attempts left: two round trips (read,
    then change it if unchanged). Returns the job as its row now is: `running`, or already
    `succeeded` when a stored page of its URL was recent enough to reuse. None when it is
    not such a job, or changed in between: the caller then takes the ORM path, which knows
    every other case."""
    since = now - timedelta(seconds=page_cache) if page_cache > 0 else None
    seen = await _read(db.engine.dialect).fetchrow(db.engine, {"job_id": job_id, "since": since})
    if seen is None or seen["status"] != "queued":
        return None
    if seen["run_at"] > now or seen["attempts"] >= max_attempts:
        return None
    job = _job_of(seen)
    job.attempts = seen["attempts"] + 1
    job.started_at = now
    job.error = None
    page_id = seen["recent_page_id"]
    if page_id is not None:  # fetched less than page_cache ago: reuse it
        job.status, job.page_id, job.finished_at = "succeeded", page_id, now
        job.progress = PROGRESS["done"]
    else:
        job.status, job.progress, job.finished_at = "running", PROGRESS["fetching"], None
    body = encode_body(JOB_UPDATED, job_json(job))
    params = {
        "job_id": job_id,
        "seen_attempts": seen["attempts"],
        "status": job.status,
        "attempts": job.attempts,
        "progress": job.progress,
        "now": now,
        "finished_at": job.finished_at,
        "page_id": job.page_id,
        "recipients": [job.user_id],
        "body": body,
    }
    row = await _claim(db.engine.dialect).fetchrow(db.engine, params)
    if row is None:
        return None
    await _published(db, row["event_id"], job, body)
    return job


async def set_progress(db: Database, job: Job, progress: int) -> bool:
    """Write a running attempt's progress with its event; False if the attempt lost its job
    (finished, requeued or taken over), in which case nothing changed."""
    data = job_json(job)
    data["progress"] = progress
    body = encode_body(JOB_UPDATED, data)
    params = {
        "job_id": job.id,
        "attempt": job.attempts,
        "progress": progress,
        "now": utcnow(),
        "recipients": [job.user_id],
        "body": body,
    }
    row = await _progress(db.engine.dialect).fetchrow(db.engine, params)
    if row is None:
        return False
    job.progress = progress
    await _published(db, row["event_id"], job, body)
    return True


async def succeed(db: Database, job: Job, parsed: ParsedPage) -> bool:
    """Store the page and finish the running attempt as `succeeded`, with its event, in one
    statement. The page is stored even if the attempt lost its job (then False, and the job
    is left as it is): it is the same page whoever asked for it."""
    now = utcnow()
    done = _copy(job)
    done.status, done.finished_at, done.error = "succeeded", now, None
    done.progress = PROGRESS["done"]
    done.page_id = _ID_HOLE
    head, tail = _split_at(encode_body(JOB_UPDATED, job_json(done)), _PAGE_ID_KEY, _ID_HOLE)
    params = {
        **{f"page_{name}": value for name, value in page_values(parsed, now).items()},
        "job_id": job.id,
        "attempt": job.attempts,
        "now": now,
        "recipients": [job.user_id],
        "head": head,
        "tail": tail,
    }
    row = await _succeed(db.engine.dialect).fetchrow(db.engine, params)
    if row is None or row["event_id"] is None:
        return False
    job.status, job.progress, job.finished_at, job.error = "succeeded", done.progress, now, None
    job.page_id = row["page_id"]
    await _published(db, row["event_id"], job, f"{head}{job.page_id}{tail}")
    return True


async def _published(db: Database, event_id: int, job: Job, body: str) -> None:
    """Hand the committed event to this process's publisher, and wait as a session would."""
    await publish_committed(db, [Pending(event_id, EVENT, JOB_UPDATED, (job.user_id,), body)])


_COLUMNS = (
    "id",
    "user_id",
    "kind",
    "url",
    "status",
    "progress",
    "attempts",
    "error",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
    "page_id",
)


def _job_of(row: Any) -> Job:
    """A Job (in no session) with the values of a row read by `_read`."""
    return Job(**{name: row[name] for name in _COLUMNS})


def _copy(job: Job) -> Job:
    return Job(**{name: getattr(job, name) for name in _COLUMNS})


# -- the statements -----------------------------------------------------------------------


def _event(source: Any, body: Any) -> Any:
    """INSERT the `job.updated` event row once for each row of `source` (none or one)."""
    return (
        postgresql.insert(_outbox)
        .from_select(
            ["kind", "topic", "recipients", "body", "created_at"],
            select(
                literal(EVENT),
                literal(JOB_UPDATED),
                bindparam("recipients", type_=JSON),
                body,
                bindparam("now", type_=UTCDateTime),
            ).select_from(source),
        )
        .returning(_outbox.c.id)
        .cte("event")
    )


@lru_cache(maxsize=8)
def _create(dialect: Dialect) -> DriverQuery:
    user_id = bindparam("user_id", type_=BigInteger)
    run_at = bindparam("run_at", type_=UTCDateTime)
    now = bindparam("now", type_=UTCDateTime)
    user_exists = exists().where(_users.c.id == user_id)
    job = (
        postgresql.insert(_jobs)
        .from_select(
            ["user_id", "kind", "url", "status", "progress", "attempts", "run_at", "created_at"],
            select(
                user_id,
                literal("parse"),
                bindparam("url", type_=String),
                literal("queued"),
                literal(PROGRESS["queued"]),
                literal(0),
                run_at,
                now,
            ).where(user_exists),
        )
        .returning(_jobs.c.id)
        .cte("job")
    )
    job_id = func.cast(job.c.id, Text)
    event = _event(job, bindparam("head", type_=Text) + job_id + bindparam("tail", type_=Text))
    task = (
        postgresql.insert(_outbox)
        .from_select(
            ["kind", "topic", "body", "run_at", "created_at"],
            select(
                literal(JOB), bindparam("task", type_=String), "[" + job_id + "]", run_at, now
            ).select_from(job),
        )
        .returning(_outbox.c.id)
        .cte("task")
    )
    statement = select(
        job.c.id.label("job_id"), event.c.id.label("event_id"), task.c.id.label("task_id")
    ).select_from(job.join(event, true()).join(task, true()))
    return DriverQuery(statement, dialect)


@lru_cache(maxsize=8)
def _read(dialect: Dialect) -> DriverQuery:
    since = bindparam("since", type_=UTCDateTime)
    recent = (
        select(_pages.c.id)
        .where(_pages.c.url == _jobs.c.url, _pages.c.fetched_at > since)
        .scalar_subquery()
    )
    statement = select(*(_jobs.c[name] for name in _COLUMNS), recent.label("recent_page_id")).where(
        _jobs.c.id == bindparam("job_id", type_=BigInteger)
    )
    return DriverQuery(statement, dialect)


@lru_cache(maxsize=8)
def _claim(dialect: Dialect) -> DriverQuery:
    now = bindparam("now", type_=UTCDateTime)
    changed = (
        update(_jobs)
        .where(
            _jobs.c.id == bindparam("job_id", type_=BigInteger),
            _jobs.c.status == "queued",
            _jobs.c.attempts == bindparam("seen_attempts", type_=Integer),
        )
        .values(
            status=bindparam("status", type_=String),
            attempts=bindparam("attempts", type_=Integer),
            progress=bindparam("progress", type_=Integer),
            started_at=now,
            heartbeat_at=now,
            finished_at=bindparam("finished_at", type_=UTCDateTime),
            error=null(),
            page_id=bindparam("page_id", type_=BigInteger),
        )
        .returning(_jobs.c.id)
        .cte("changed")
    )
    event = _event(changed, bindparam("body", type_=Text))
    return DriverQuery(select(event.c.id.label("event_id")).add_cte(changed, event), dialect)


def _running(values: dict[str, Any]) -> Any:
    """UPDATE the job if its attempt `attempt` is still running."""
    return (
        update(_jobs)
        .where(
            _jobs.c.id == bindparam("job_id", type_=BigInteger),
            _jobs.c.status == "running",
            _jobs.c.attempts == bindparam("attempt", type_=Integer),
        )
        .values(**values)
        .returning(_jobs.c.id)
        .cte("changed")
    )


@lru_cache(maxsize=8)
def _progress(dialect: Dialect) -> DriverQuery:
    changed = _running({"progress": bindparam("progress", type_=Integer)})
    event = _event(changed, bindparam("body", type_=Text))
    return DriverQuery(select(event.c.id.label("event_id")).add_cte(changed, event), dialect)


@lru_cache(maxsize=8)
def _succeed(dialect: Dialect) -> DriverQuery:
    now = bindparam("now", type_=UTCDateTime)
    page_columns = {
        column.name: bindparam(f"page_{column.name}", type_=column.type)
        for column in _pages.c
        if column.name != "id"
    }
    upsert = postgresql.insert(_pages).values(page_columns)
    page = (
        upsert.on_conflict_do_update(
            index_elements=[_pages.c.url],
            set_={name: upsert.excluded[name] for name in page_columns if name != "url"},
        )
        .returning(_pages.c.id)
        .cte("page")
    )
    changed = _running(
        {
            "status": "succeeded",
            "progress": PROGRESS["done"],
            "finished_at": now,
            "error": null(),
            "page_id": select(page.c.id).scalar_subquery(),
        }
    )
    body = (
        bindparam("head", type_=Text) + func.cast(page.c.id, Text) + bindparam("tail", type_=Text)
    )
    event = _event(changed.join(page, true()), body)
    statement = select(
        page.c.id.label("page_id"), select(event.c.id).scalar_subquery().label("event_id")
    ).add_cte(changed, event)
    return DriverQuery(statement, dialect)
