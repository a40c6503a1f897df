"""Time limits and retry policy of the background jobs, derived from settings."""

from __future__ import annotations

import random
from dataclasses import dataclass

from parley.settings import Settings

# How long the worker may hold a message with an ETA at most: RabbitMQ closes channels that
# keep a message unacknowledged past its consumer timeout (30 min by default), and Redis
# hands a message to another worker once its visibility timeout has passed.
MAX_ETA_HOLD_SECONDS = 600.0


@dataclass(frozen=True)
class JobLimits:
    """Everything about how long a job may take and how it is retried."""

    time_limit: float
    """Celery's hard limit: the process running the task is killed after this long."""
    soft_time_limit: float
    """Celery's soft limit: the task is interrupted after this long."""
    work_timeout: float
    """Our own deadline for one attempt's async work, below both Celery limits."""
    max_attempts: int
    backoff: float
    backoff_max: float
    visibility_timeout: float
    """Redis redelivers a message unacknowledged for this long (a dead worker's job)."""
    eta_hold: float
    """The longest ETA given to a message; later run times are reached in hops."""
    heartbeat: float
    """A running attempt renews its job's heartbeat this often."""
    abandoned_after: float
    """A running job whose heartbeat is older than this lost its worker: it runs again."""
    progress_interval: float
    """A running job's progress is written at most this often (see parley.jobs.progress)."""
    preview_stale_after: float
    """A preview `pending` for longer than this is failed by the sweeper."""
    page_cache: float

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLimits:
        """The limits for `settings`; the visibility timeout is kept above the hard limit."""
        hard = float(settings.job_time_limit_seconds)
        # A message must not be handed out again while its task may still be running.
        visibility = float(max(settings.broker_visibility_timeout_seconds, 1.5 * hard))
        backoff_max = max(
            settings.job_retry_backoff_max_seconds, settings.job_retry_backoff_seconds
        )
        return cls(
            time_limit=hard,
            soft_time_limit=hard - 5,
            work_timeout=hard - 10,
            max_attempts=settings.job_max_attempts,
            backoff=settings.job_retry_backoff_seconds,
            backoff_max=backoff_max,
            visibility_timeout=visibility,
            eta_hold=min(MAX_ETA_HOLD_SECONDS, visibility / 2),
            heartbeat=settings.job_heartbeat_seconds,
            abandoned_after=4 * settings.job_heartbeat_seconds,
            progress_interval=settings.job_progress_interval_seconds,
            preview_stale_after=settings.job_max_attempts * (hard + backoff_max) + visibility + 60,
            page_cache=float(settings.page_cache_seconds),
        )

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        Exponential backoff capped at `backoff_max`, with "equal jitter": half of the delay is
        fixed, the other half random, so that retries spread out but still grow.
        """
        delay: float = min(self.backoff_max, self.backoff * 2.0 ** max(attempt - 1, 0))
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not a secret
