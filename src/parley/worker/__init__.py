"""Background jobs on Celery: the machinery, for domains to hand their tasks to.

Domains describe their tasks as `TaskSpec`s (name, queue, async work) in their own
`tasks.py`; `parley.tasks` gathers them, and the app (`parley serve`) and the worker
process (`parley worker`, in `parley.worker.process`) build a Celery app from them with
`create_celery`. This package imports no domain. The names below are loaded on first use,
so that the worker process can prepare its metrics before anything imports
prometheus_client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names below resolve to, for type checkers
    from parley.worker._context import (
        AppLoopRunner as AppLoopRunner,
    )
    from parley.worker._context import (
        JobContext as JobContext,
    )
    from parley.worker._context import (
        ProcessLoopRunner as ProcessLoopRunner,
    )
    from parley.worker._context import (
        TaskRunner as TaskRunner,
    )
    from parley.worker._factory import (
        NOOP_TASK as NOOP_TASK,
    )
    from parley.worker._factory import (
        ParleyCelery as ParleyCelery,
    )
    from parley.worker._factory import (
        create_celery as create_celery,
    )
    from parley.worker._limits import (
        JobLimits as JobLimits,
    )
    from parley.worker._outcomes import (
        DONE as DONE,
    )
    from parley.worker._outcomes import (
        Done as Done,
    )
    from parley.worker._outcomes import (
        Outcome as Outcome,
    )
    from parley.worker._outcomes import (
        RunLater as RunLater,
    )
    from parley.worker._queue import (
        BrokerUnavailable as BrokerUnavailable,
    )
    from parley.worker._queue import (
        JobQueue as JobQueue,
    )
    from parley.worker._runtime import (
        JobsRuntime as JobsRuntime,
    )
    from parley.worker._spec import (
        TaskCall as TaskCall,
    )
    from parley.worker._spec import (
        TaskSpec as TaskSpec,
    )

_WHERE = {
    "AppLoopRunner": "_context",
    "JobContext": "_context",
    "ProcessLoopRunner": "_context",
    "TaskRunner": "_context",
    "NOOP_TASK": "_factory",
    "ParleyCelery": "_factory",
    "create_celery": "_factory",
    "JobLimits": "_limits",
    "DONE": "_outcomes",
    "Done": "_outcomes",
    "Outcome": "_outcomes",
    "RunLater": "_outcomes",
    "BrokerUnavailable": "_queue",
    "JobQueue": "_queue",
    "JobsRuntime": "_runtime",
    "TaskCall": "_spec",
    "TaskSpec": "_spec",
}

__all__ = [
    "DONE",
    "NOOP_TASK",
    "AppLoopRunner",
    "BrokerUnavailable",
    "Done",
    "JobContext",
    "JobLimits",
    "JobQueue",
    "JobsRuntime",
    "Outcome",
    "ParleyCelery",
    "ProcessLoopRunner",
    "RunLater",
    "TaskCall",
    "TaskRunner",
    "TaskSpec",
    "create_celery",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'parley.worker' has no attribute {name!r}")
    return getattr(importlib.import_module(f"parley.worker.{module}"), name)
