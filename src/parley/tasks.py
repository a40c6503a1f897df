"""Every background task of Parley, and the domains' upkeep of them, in one list.

The composition roots use it: the app (`parley serve`, whose relay runs the housekeeping
and whose embedded worker runs the recoveries at start), the worker process (`parley
worker`) and the Celery app of Flower (`parley.celery_app`). The worker package itself
imports no domain.
"""

from __future__ import annotations

from parley.billing import upkeep as billing_upkeep
from parley.billing.tasks import APPLY_EVENT
from parley.chats import previews
from parley.chats.tasks import PREVIEW
from parley.jobs import sweeper
from parley.jobs.tasks import PARSE

TASKS = (PARSE, PREVIEW, APPLY_EVENT)
"""The tasks, each with its queue (`parse`, `previews`, `billing`)."""

HOUSEKEEPING = (
    sweeper.requeue_abandoned,
    previews.fail_stale_previews,
    billing_upkeep.forget_old_events,
)
"""Run every few seconds by the leading relay: work whose worker is gone."""

RECOVERIES = (
    sweeper.requeue_unsent,
    previews.requeue_pending_previews,
    billing_upkeep.requeue_unapplied_events,
)
"""Run when an embedded worker starts: work the previous process's broker lost."""
