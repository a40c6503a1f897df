"""The billing domain's background task: applying one stored Stripe event (a thin wrapper),
on a queue of its own (`billing`), so that webhook bursts never wait behind page fetches."""

from __future__ import annotations

from parley.billing import apply
from parley.billing.webhooks import APPLY_TASK, BILLING_QUEUE
from parley.worker import JobContext, Outcome, TaskCall, TaskSpec


async def _apply(ctx: JobContext, call: TaskCall) -> Outcome:
    (event_id,) = call.args
    return await apply.apply_event(ctx, str(event_id), attempt=call.attempt)


APPLY_EVENT = TaskSpec(
    name=APPLY_TASK,
    queue=BILLING_QUEUE,
    arguments=("event_id",),
    run=_apply,
)
