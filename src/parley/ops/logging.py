"""structlog set-up: JSON lines in production, readable console output in development.

Every line of a background task carries `task_id` and `task_name`, and the job it works on
(`job_id`, or `message_id` and `url` for a link preview): the worker binds them for the
duration of the task (`bind_task_fields`), and Celery's own lines about a task (received,
succeeded, failed, retried) get them from the record Celery logs (`_celery_task_fields`).

No line carries a credential: the value of every `token`, `access_token`, `refresh_token`,
`code` (and similar) query parameter is replaced after the line is rendered, whoever wrote
it (uvicorn logs WebSocket URLs with their query string, `?token=<access token>`).
"""

from __future__ import annotations

import ast
import contextvars
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, TextIO

import structlog

from parley.settings import Settings

# The names of a task's positional arguments worth a log field, by task name.
_TASK_ARGUMENTS: dict[str, tuple[str, ...]] = {}


def name_task_arguments(task_name: str, fields: Sequence[str]) -> None:
    """Log a task's positional arguments under these field names (`job_id`, ...)."""
    _TASK_ARGUMENTS[task_name] = tuple(fields)


def task_fields(task_name: str, task_id: str, args: Sequence[Any] | None) -> dict[str, Any]:
    """The log fields that identify one run of a task and the job it works on."""
    fields: dict[str, Any] = {"task_id": task_id, "task_name": task_name}
    names = _TASK_ARGUMENTS.get(task_name, ())
    fields.update(zip(names, args or (), strict=False))
    return fields


def bind_task_fields(
    task_name: str, task_id: str, args: Sequence[Any] | None
) -> Mapping[str, contextvars.Token[Any]]:
    """Add a task's fields to every log line of this context; undo with `reset_task_fields`."""
    return structlog.contextvars.bind_contextvars(**task_fields(task_name, task_id, args))


def reset_task_fields(tokens: Mapping[str, contextvars.Token[Any]]) -> None:
    """Remove what `bind_task_fields` added (restoring any value bound before it)."""
    structlog.contextvars.reset_contextvars(**tokens)


def _celery_task_fields(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Celery logs each task event with `extra={"data": {"id", "name", "args", ...}}`."""
    data = getattr(event_dict.get("_record"), "data", None)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return event_dict
    name = str(data.get("name", ""))
    args = data.get("args")
    if isinstance(args, str) and name in _TASK_ARGUMENTS:
        try:
            args = ast.literal_eval(args)  # Celery's repr of the arguments: "(42,)"
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            args = None  # cut short (long arguments) or not a literal: the id is enough
    if not isinstance(args, (list, tuple)):
        args = None
    for key, value in task_fields(name, data["id"], args).items():
        event_dict.setdefault(key, value)
    return event_dict


# A URL query parameter that carries a credential, and its value up to the next separator;
# it may also start a quoted value, or a line of a traceback (an escaped newline in JSON).
_SECRET_PARAMETER = re.compile(
    r"(?i)((?:^|[?&;\s\"']|\\n)(?:access_token|refresh_token|id_token|token|code|client_secret"
    r"|password|otp|session|csrf_token)=)[^&;#\s\"'<>\\]*"
)
REDACTED = "[redacted]"


def redact_secrets(line: str) -> str:
    """`line` with the value of every credential-carrying query parameter replaced."""
    if "=" not in line:  # nothing to redact, and the search would try every position
        return line
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + REDACTED, line)


def _redacting(renderer: structlog.types.Processor) -> structlog.types.Processor:
    """The renderer, with credentials removed from the line it renders."""

    def render(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        line = renderer(logger, method_name, event_dict)
        return redact_secrets(line) if isinstance(line, str) else line

    return render


class _RecoveredLibraryFailures(logging.Filter):
    """Keep a library's failure that Parley recovers from as one warning line, not a stack.

    redis-py (8.1 and later) moves a cluster pubsub's channels to their new master in a
    background task after a slots refresh. During a failover that task can fail on a
    connection the failover broke, and redis-py logs it as an error with a traceback. The
    broken connection fails the bus's reader too, which subscribes afresh and refills its
    sockets from the log, so nothing is lost. The line stays, as a warning with the error
    named, and a traceback in the logs still means a bug of ours.
    """

    MESSAGES = ("shard subscription reconciliation failed",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(self.MESSAGES):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to `sys.stdout` as it is when a record is emitted, not as it was when logging
    was configured: whoever replaced it (a test's output capture, say) may have closed the
    old one since, and a line written there is lost."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # `StreamHandler` sets it once; the property always answers the current one


def configure_logging(settings: Settings) -> None:
    """Route stdlib and structlog records through one renderer on stdout."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and (settings.env == "production" or not sys.stdout.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        # Below the level, a call stops at the first processor instead of the last.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _celery_task_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redacting(renderer),
        ],
    )
    # No line shows where it was logged from, nor the thread or process that logged it:
    # the standard library need not look them up for every record (each one costs more
    # than rendering the line; the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Python's warnings (Celery's, the generated-secret notice) become log lines too.
    logging.captureWarnings(True)
    # uvicorn's own access log is replaced by ours (one line per request, with a request id).
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("redis.asyncio.cluster").addFilter(_RecoveredLibraryFailures())
    for name in ("uvicorn", "uvicorn.error", "celery"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
