"""Request and response bodies of the job and page routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator

from parley.common.schemas import CamelModel, RequestModel
from parley.parser import MAX_URL, is_web_url


class ParseJobIn(RequestModel):
    """A page to fetch and parse, now or at `runAt` (an ISO 8601 time with an offset)."""

    url: str = Field(
        min_length=1,
        max_length=MAX_URL,
        description="an absolute http or https URL with a host (422 otherwise)",
    )
    run_at: AwareDatetime | None = None

    @field_validator("run_at", mode="before")
    @classmethod
    def _a_time_not_a_number(cls, value: object) -> object:
        # Pydantic would read a number as seconds since 1970; the schema says a date-time.
        if isinstance(value, int | float):
            raise ValueError("runAt must be an ISO 8601 date-time with an offset")
        return value

    @field_validator("run_at")
    @classmethod
    def _a_time_in_utc_range(cls, value: datetime | None) -> datetime | None:
        # It is stored in UTC: 9999-12-31T23:59:59-14:00 is after the last datetime.
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("runAt is out of range") from None
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not is_web_url(value):
            raise ValueError("url must be an absolute http or https URL with a host")
        return value


class JobOut(CamelModel):
    """A job as its owner sees it (and as `job.updated` events carry it)."""

    id: int
    kind: Literal["parse"]
    url: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: int
    attempts: int
    error: str | None
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    page_id: int | None


class LinkOut(CamelModel):
    """A link found on a page."""

    href: str
    text: str


class PageOut(CamelModel):
    """A fetched and parsed page."""

    id: int
    url: str
    final_url: str
    status_code: int
    content_type: str
    title: str | None
    description: str | None
    image_url: str | None
    site_name: str | None
    lang: str | None
    text: str
    links: list[LinkOut]
    fetched_at: datetime
