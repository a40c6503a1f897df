"""Link previews: every http(s) URL of a message (at most 5) gets a preview.

The chats service calls `sync_previews` in the transaction that creates or changes a
message: new URLs get `pending` previews and their jobs are enqueued through the outbox, in
that same transaction. The worker resolves each preview with `run_preview`: like Zulip, it
re-reads the message under a row lock and writes the preview back only if the text still
has its URL, with the `message.updated` event in the same transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.chats import presenters
from parley.chats.links import find_urls
from parley.chats.models import Message, MessagePreview
from parley.chats.schemas import as_json
from parley.db.base import utcnow
from parley.jobs.models import Page
from parley.jobs.pages import ParsedPage, fetch_and_parse, recent_page, store_page
from parley.ops.metrics import JOB_OUTCOMES
from parley.outbox import emit, enqueue
from parley.parser import FetchError
from parley.worker import DONE, JobContext, Outcome, RunLater

log = structlog.get_logger("parley.previews")

PREVIEW_TASK = "parley.preview_link"
PREVIEWS_QUEUE = "previews"
BATCH = 500


@dataclass(frozen=True)
class PreviewFields:
    """What a ready preview shows."""

    title: str | None
    description: str | None
    image_url: str | None
    site_name: str | None
    page_id: int


# -- the API side: called by the chats service --------------------------------------------


async def sync_previews(session: AsyncSession, message: Message) -> None:
    """Make the message's previews match the URLs in its text (call before the commit).

    New URLs get `pending` previews and their jobs are enqueued; previews of URLs no longer
    in the text are deleted, and the others keep their state. An existing message is locked
    first, so that a preview written back by a worker meanwhile is neither lost nor reported
    stale. A new message is flushed first, for its id.
    """
    current: dict[str, MessagePreview] = {}
    if inspect(message).key is None:
        message.previews = []
        await session.flush()
    else:
        await session.execute(select(Message.id).where(Message.id == message.id).with_for_update())
        await session.refresh(message, ["previews"])
        current = {p.url: p for p in message.previews}
    urls = find_urls(message.text) if message.deleted_at is None else []
    wanted: list[MessagePreview] = []
    added: list[str] = []
    now = utcnow()
    for position, url in enumerate(urls):
        preview = current.get(url)
        if preview is None:
            preview = MessagePreview(
                url=url, position=position, status="pending", created_at=now, updated_at=now
            )
            added.append(url)
        elif preview.position != position:
            preview.position = position
        wanted.append(preview)
    message.previews = wanted
    for url in added:
        enqueue(session, PREVIEW_TASK, [message.id, url])


# -- the worker side ----------------------------------------------------------------------


async def run_preview(ctx: JobContext, message_id: int, url: str, *, attempt: int) -> Outcome:
    """Resolve the preview of `url` in message `message_id` (attempt number `attempt`).

    Reuses a page fetched less than `page_cache` ago; a transient failure asks for a retry
    with backoff until `max_attempts`, then the preview fails.
    """
    async with ctx.db.session() as session:
        if not await _still_pending(session, message_id, url):
            return DONE
        page = await recent_page(session, url, ctx.limits.page_cache)
        fields = _fields_of_page(page) if page is not None else None
    if fields is not None:
        return await _resolve(ctx, message_id, url, fields=fields)

    try:
        async with asyncio.timeout(ctx.limits.work_timeout):
            parsed = await fetch_and_parse(url, ctx.settings, _no_steps)
    except FetchError as exc:
        error, transient = exc.message, exc.transient
    except TimeoutError:
        error, transient = f"no result within {ctx.limits.work_timeout:g} s", True
    else:
        return await _resolve(ctx, message_id, url, parsed=parsed)
    if transient and attempt < ctx.limits.max_attempts:
        return RunLater(utcnow() + timedelta(seconds=ctx.limits.retry_delay(attempt)), error)
    log.info("preview failed", message_id=message_id, url=url, error=error)
    return await _resolve(ctx, message_id, url, fields=None)


async def fail_preview(ctx: JobContext, message_id: int, url: str) -> None:
    """Mark a preview failed (its job ran out of time)."""
    await _resolve(ctx, message_id, url, fields=None)


async def _no_steps(step: str) -> None:
    """Previews report no progress."""


async def _still_pending(session: AsyncSession, message_id: int, url: str) -> bool:
    found = await session.scalar(
        select(MessagePreview.id).where(
            MessagePreview.message_id == message_id,
            MessagePreview.url == url,
            MessagePreview.status == "pending",
        )
    )
    return found is not None


def _fields_of_page(page: Page) -> PreviewFields:
    return PreviewFields(page.title, page.description, page.image_url, page.site_name, page.id)


async def _resolve(
    ctx: JobContext,
    message_id: int,
    url: str,
    *,
    fields: PreviewFields | None = None,
    parsed: ParsedPage | None = None,
) -> Outcome:
    async with ctx.db.session() as session:
        if parsed is not None:
            # Stored in the same transaction as the write-back: once the page row exists,
            # the preview's fate is decided too.
            page_id = await store_page(session, parsed)
            e = parsed.extracted
            fields = PreviewFields(e.title, e.description, e.image_url, e.site_name, page_id)
        await write_back_preview(session, message_id, url, fields)
    JOB_OUTCOMES.labels("preview", "succeeded" if fields is not None else "failed").inc()
    return DONE


async def write_back_preview(
    session: AsyncSession, message_id: int, url: str, fields: PreviewFields | None
) -> None:
    """Write a resolved preview into its message, if the message still has that URL.

    Commits the session (with whatever else it holds) either way, with `message.updated`
    (the whole message) when the preview was written.
    """
    message = await session.scalar(
        select(Message)
        .where(Message.id == message_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if message is None or message.deleted_at is not None or url not in find_urls(message.text):
        await session.commit()
        log.info("stale preview not written back", message_id=message_id, url=url)
        return
    values: dict[str, object] = {"status": "failed", "updated_at": utcnow()}
    if fields is not None:
        values.update(
            status="ready",
            title=fields.title,
            description=fields.description,
            image_url=fields.image_url,
            site_name=fields.site_name,
            page_id=fields.page_id,
        )
    written = await session.scalar(
        update(MessagePreview)
        .where(
            MessagePreview.message_id == message_id,
            MessagePreview.url == url,
            MessagePreview.status == "pending",
        )
        .values(**values)
        .returning(MessagePreview.id)
    )
    if written is not None:  # else resolved already, or replaced by an edit
        await session.refresh(message, ["previews"])
        payload = as_json(presenters.message_out(message))
        emit(
            session,
            await presenters.member_ids(session, message.chat_id),
            "message.updated",
            payload,
        )
    await session.commit()


# -- housekeeping -------------------------------------------------------------------------


async def fail_stale_previews(ctx: JobContext) -> int:
    """Fail previews still pending long after every attempt could have run (the relay's
    housekeeping); returns how many."""
    cutoff = utcnow() - timedelta(seconds=ctx.limits.preview_stale_after)
    async with ctx.db.session() as session:
        stale = (
            await session.execute(
                select(MessagePreview.message_id, MessagePreview.url)
                .where(MessagePreview.status == "pending", MessagePreview.updated_at < cutoff)
                .limit(BATCH)
            )
        ).all()
    for message_id, url in stale:
        async with ctx.db.session() as session:
            await write_back_preview(session, message_id, url, None)
    return len(stale)


async def requeue_pending_previews(ctx: JobContext) -> int:
    """Enqueue every pending preview again (the in-memory broker lost its messages when the
    previous process stopped); returns how many."""
    async with ctx.db.session() as session:
        pending = (
            await session.execute(
                select(MessagePreview.message_id, MessagePreview.url).where(
                    MessagePreview.status == "pending"
                )
            )
        ).all()
        for message_id, url in pending:
            enqueue(session, PREVIEW_TASK, [message_id, url])
        await session.commit()
    return len(pending)
