"""The chats domain's background task: resolving one link preview (a thin wrapper, as
Zulip's embed_links)."""

from __future__ import annotations

from parley.chats import previews
from parley.worker import JobContext, Outcome, TaskCall, TaskSpec


async def _resolve(ctx: JobContext, call: TaskCall) -> Outcome:
    message_id, url = call.args
    return await previews.run_preview(ctx, int(message_id), str(url), attempt=call.attempt)


async def _give_up(ctx: JobContext, call: TaskCall) -> None:
    message_id, url = call.args
    await previews.fail_preview(ctx, int(message_id), str(url))


PREVIEW = TaskSpec(
    name=previews.PREVIEW_TASK,
    queue=previews.PREVIEWS_QUEUE,
    arguments=("message_id", "url"),
    run=_resolve,
    on_time_limit=_give_up,
)
