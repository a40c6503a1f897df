"""What a domain hands the worker: its tasks, each with its queue and its async work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time this module stays light: the worker process imports it first
    from parley.worker._context import JobContext
    from parley.worker._outcomes import Outcome


@dataclass(frozen=True)
class TaskCall:
    """One delivery of a task: its arguments, which attempt it is, and whether the broker
    delivers it again because the worker that had it died."""

    args: tuple[Any, ...]
    attempt: int
    redelivered: bool


Work = Callable[["JobContext", TaskCall], Awaitable["Outcome"]]
TimeLimitHandler = Callable[["JobContext", TaskCall], Awaitable[None]]


@dataclass(frozen=True)
class TaskSpec:
    """A background task: its name on the broker, its queue, the names of its arguments (for
    the log lines of its runs), its work, and what to do when it runs out of time."""

    name: str
    queue: str
    arguments: tuple[str, ...]
    run: Work
    on_time_limit: TimeLimitHandler | None = None


def queues_of(tasks: Sequence[TaskSpec]) -> tuple[str, ...]:
    """The queues of `tasks`, each once, in the order they first appear."""
    return tuple(dict.fromkeys(task.queue for task in tasks))


@dataclass(frozen=True)
class QueueNames:
    """Broker names of the queues: prefixed, so that installations can share a broker."""

    prefix: str

    def __call__(self, queue: str) -> str:
        """The broker's name of `queue`."""
        return self.prefix + queue
