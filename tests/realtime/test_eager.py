"""`start_now`: a socket write runs in the caller, and in a task only once it has to wait.

The live tests exercise both paths through real sockets (every delivery takes the first,
a stalled client the second, in `test_backpressure.py`); these pin down the rules of the
hand-over itself, which those tests would only show as a lost or stuck frame.
"""

from __future__ import annotations

import asyncio

import pytest

from parley.realtime.eager import start_now


async def test_a_coroutine_that_never_waits_runs_to_the_end_in_the_caller() -> None:
    done: list[str] = []

    async def write() -> None:
        done.append("written")

    assert start_now(write()) is None
    assert done == ["written"], "finished before start_now returned, with no task"


async def test_its_error_is_raised_in_the_caller() -> None:
    async def write() -> None:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        start_now(write())


async def test_a_coroutine_that_waits_is_finished_by_a_task_in_order() -> None:
    steps: list[str] = []
    writable = asyncio.Event()

    async def write() -> None:
        steps.append("started")
        await writable.wait()
        steps.append("after the first wait")
        await asyncio.sleep(0)  # a bare yield, as some awaitables do
        steps.append("finished")

    task = start_now(write())
    assert task is not None
    assert steps == ["started"], "the first step ran in the caller"
    writable.set()
    await asyncio.wait_for(task, 5)
    assert steps == ["started", "after the first wait", "finished"]


async def test_the_task_carries_the_awaited_result_and_error() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()
    got: list[int] = []

    async def write() -> None:
        got.append(await answer)
        raise BrokenPipeError("after the wait")

    task = start_now(write())
    assert task is not None
    answer.set_result(42)
    with pytest.raises(BrokenPipeError):
        await asyncio.wait_for(task, 5)
    assert got == [42]


async def test_cancelling_the_task_cancels_the_waiting_coroutine() -> None:
    cleaned_up = asyncio.Event()

    async def write() -> None:
        try:
            await asyncio.Event().wait()  # never set: a client that never reads
        finally:
            cleaned_up.set()

    task = start_now(write())
    assert task is not None
    await asyncio.sleep(0)  # let the task take over the wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()
    assert task.cancelled()
