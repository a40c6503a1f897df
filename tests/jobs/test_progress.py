"""A running job's progress is written at most once per interval: steps over sooner are not.

End to end with an app (and in services mode a `parley worker`) whose interval is a few
seconds; the reporter's timing rules on their own, with a recording write.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from parley.jobs.progress import ProgressReporter
from tests.conftest import MODE
from tests.fixtures.apps import running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.users import register
from tests.fixtures.workers import start_worker
from tests.jobs.conftest import Events, job_settings, listening, new_prefix, post_job
from tests.jobs.pageserver import PageServer

INTERVAL = 2.0


async def steps_of(events: Events, job_id: int) -> list[tuple[str, int]]:
    """(status, progress) of each `job.updated` of the job, up to its end."""
    steps = []
    while True:
        data = await events.next("job.updated", lambda d: d["id"] == job_id)
        steps.append((data["status"], data["progress"]))
        if data["status"] in ("succeeded", "failed"):
            return steps


async def test_quick_steps_are_not_written_and_a_step_after_a_long_one_is(
    own_database_url: str, redis_url: str | None, pages: PageServer, tmp_path: Path
) -> None:
    settings = job_settings(
        own_database_url, redis_url, new_prefix(), job_progress_interval_seconds=INTERVAL
    )
    worker = start_worker(settings, tmp_path) if MODE == "services" else None
    try:
        async with running_app(settings) as app, guarded_client(app) as client:
            alice = await register(client, "alice")
            async with listening(app, alice.id) as events:
                # A local page is fetched, parsed and stored well within the interval.
                quick = await post_job(client, alice, pages.url("/page/quick"))
                assert await steps_of(events, quick["id"]) == [
                    ("queued", 0),
                    ("running", 10),
                    ("succeeded", 100),
                ]

                # A fetch that outlasts the interval: the step after it is written at once.
                key = uuid.uuid4().hex[:8]
                held = await post_job(client, alice, pages.url(f"/hold/{key}"))
                claimed = await events.next(
                    "job.updated", lambda d: d["id"] == held["id"] and d["status"] == "running"
                )
                assert claimed["progress"] == 10
                assert await asyncio.to_thread(pages.arrived(key).wait, 30)
                await asyncio.sleep(INTERVAL)  # the interval passing is what is under test
                pages.release(key)
                rest = await steps_of(events, held["id"])
        assert rest[0] == ("running", 60)
        assert rest[-1] == ("succeeded", 100)
    finally:
        if worker is not None:
            worker.stop()


class Writes:
    """A write function that records what it is given and when."""

    def __init__(self) -> None:
        self.progress: list[int] = []
        self.at: list[float] = []
        self.arrived = asyncio.Event()

    async def __call__(self, progress: int) -> None:
        self.progress.append(progress)
        self.at.append(time.monotonic())
        self.arrived.set()


async def test_a_step_after_a_quiet_interval_is_written_at_once() -> None:
    writes = Writes()
    reporter = ProgressReporter(writes, interval=0, reported=10)
    await reporter.advance(60)
    assert writes.progress == [60]  # written before advance returned
    await reporter.advance(60)
    await reporter.advance(50)
    assert writes.progress == [60]  # neither the same step again nor an earlier one
    await reporter.close()


async def test_steps_within_an_interval_are_written_once_as_the_latest_when_it_ends() -> None:
    writes = Writes()
    started = time.monotonic()
    reporter = ProgressReporter(writes, interval=0.3, reported=10)
    await reporter.advance(60)
    await reporter.advance(90)
    assert writes.progress == []
    await asyncio.wait_for(writes.arrived.wait(), 5)
    assert writes.progress == [90]
    assert writes.at[0] - started >= 0.3
    assert reporter.reported == 90
    await reporter.close()


async def test_closing_drops_a_step_still_waiting_for_its_turn() -> None:
    writes = Writes()
    reporter = ProgressReporter(writes, interval=0.2, reported=10)
    await reporter.advance(60)
    await reporter.close()
    await reporter.advance(90)
    waited = asyncio.create_task(writes.arrived.wait())
    done, _ = await asyncio.wait([waited], timeout=0.5)  # more than the interval: nothing
    waited.cancel()
    assert not done
    assert writes.progress == []


async def test_closing_lets_a_write_under_way_finish() -> None:
    entered, finish = asyncio.Event(), asyncio.Event()
    written: list[int] = []

    async def slow_write(progress: int) -> None:
        entered.set()
        await finish.wait()
        written.append(progress)

    reporter = ProgressReporter(slow_write, interval=0.05, reported=10)
    await reporter.advance(60)
    await asyncio.wait_for(entered.wait(), 5)
    closing = asyncio.create_task(reporter.close())
    await asyncio.sleep(0)
    assert not closing.done()  # close waits for the write
    finish.set()
    await asyncio.wait_for(closing, 5)
    assert written == [60]


async def test_a_failed_later_write_is_tried_again() -> None:
    calls: list[int] = []
    succeeded = asyncio.Event()

    async def flaky_write(progress: int) -> None:
        calls.append(progress)
        if len(calls) == 1:
            raise OSError("the database went away")
        succeeded.set()

    reporter = ProgressReporter(flaky_write, interval=0.05, reported=10)
    await reporter.advance(60)
    await asyncio.wait_for(succeeded.wait(), 5)
    assert calls == [60, 60]
    assert reporter.reported == 60
    await reporter.close()
