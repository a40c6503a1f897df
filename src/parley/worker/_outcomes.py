"""What a task should do after its async work returned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Done:
    """Nothing more to do for this message: acknowledge it."""


@dataclass(frozen=True)
class RunLater:
    """Deliver the task again at `at`: a retry after `error`, or a job not due yet."""

    at: datetime
    error: str | None = None


Outcome = Done | RunLater

DONE = Done()
