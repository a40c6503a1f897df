"""Stored pages: find a recent one, fetch and parse a new one, store it by URL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from parley.common.errors import NotFound
from parley.db.base import utcnow
from parley.jobs.models import Job, Page
from parley.parser import ExtractedPage, FetchedPage, FetchLimits, extract_page, fetch_page
from parley.settings import Settings

StepHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ParsedPage:
    """A fetched page with what was extracted from it, ready to store."""

    fetched: FetchedPage
    extracted: ExtractedPage


async def recent_page(session: AsyncSession, url: str, max_age_seconds: float) -> Page | None:
    """The stored page of `url` if it was fetched less than `max_age_seconds` ago."""
    if max_age_seconds <= 0:
        return None
    since = utcnow() - timedelta(seconds=max_age_seconds)
    page: Page | None = await session.scalar(
        select(Page).where(Page.url == url, Page.fetched_at > since)
    )
    return page


def recent_page_id(url: Any, max_age_seconds: float) -> Any:
    """A scalar subquery: the id of the stored page of `url` (a column or a value) if it was
    fetched less than `max_age_seconds` ago, else NULL; None when pages are never reused.
    (`recent_page` as part of another statement: the job claim returns it.)"""
    if max_age_seconds <= 0:
        return None
    since = utcnow() - timedelta(seconds=max_age_seconds)
    return select(Page.id).where(Page.url == url, Page.fetched_at > since).scalar_subquery()


async def fetch_and_parse(url: str, settings: Settings, on_step: StepHook) -> ParsedPage:
    """Fetch `url` under the fetcher's limits, then extract it off the event loop.

    `on_step` is awaited with "fetching" and "parsing"; a FetchError says why it failed.
    """
    fetched = await fetch_page(
        url,
        allow_private=settings.fetch_allow_private,
        limits=FetchLimits(),
        on_progress=on_step,
    )
    await on_step("parsing")
    # Extraction is CPU work: keep it off the loop, which may be the API server's.
    extracted = await asyncio.to_thread(
        extract_page, fetched.body, url=fetched.final_url, headers=fetched.headers
    )
    return ParsedPage(fetched, extracted)


def page_values(parsed: ParsedPage, fetched_at: datetime) -> dict[str, Any]:
    """The columns of the stored page of `parsed` (all but its id), by name."""
    fetched, extracted = parsed.fetched, parsed.extracted
    return {
        "url": fetched.url,
        "final_url": fetched.final_url,
        "status_code": fetched.status_code,
        "content_type": fetched.content_type[:255],
        "title": extracted.title,
        "description": extracted.description,
        "image_url": extracted.image_url,
        "site_name": extracted.site_name,
        "lang": extracted.lang,
        "text": extracted.text,
        # Not dataclasses.asdict: it deep-copies each of the page's hundreds of links.
        "links": [{"href": link.href, "text": link.text} for link in extracted.links],
        "fetched_at": fetched_at,
    }


async def store_page(session: AsyncSession, parsed: ParsedPage) -> int:
    """Insert or refresh the page of the requested URL (not committed); returns its id."""
    values = page_values(parsed, utcnow())
    changed = [k for k in values if k != "url"]
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(Page).values(values)
        stmt = pg.on_conflict_do_update(
            index_elements=[Page.url], set_={k: pg.excluded[k] for k in changed}
        ).returning(Page.id)
    else:
        lite = sqlite.insert(Page).values(values)
        stmt = lite.on_conflict_do_update(
            index_elements=[Page.url], set_={k: lite.excluded[k] for k in changed}
        ).returning(Page.id)
    page_id: int = (await session.execute(stmt)).scalar_one()
    return page_id


async def get_page(session: AsyncSession, page_id: int, user_id: int) -> Page:
    """A page the caller fetched with one of their jobs; NotFound otherwise."""
    owned = select(Job.id).where(Job.user_id == user_id, Job.page_id == page_id).limit(1)
    page: Page | None = await session.scalar(select(Page).where(Page.id == page_id, owned.exists()))
    if page is None:
        raise NotFound("page not found")
    return page
