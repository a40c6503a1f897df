"""Ids: positive 64-bit integers, the one bound every id in a request is checked against."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field
from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**53 - 1
"""The largest id: every JSON client reads integers up to 2**53 - 1 exactly (JavaScript's
safe integers), and the database's BIGINT ids stay far below it."""

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id in a request body."""

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in a route's path."""


class _IdSegment(Convertor[str]):
    """A path segment that stands for an id: any segment but a word a sibling route uses.

    `/jobs/parse` is its own route, so `GET /jobs/parse` must not be taken for `GET
    /jobs/{job_id}`: a wrong method there answers 405 with the methods of `/jobs/parse`.
    Anything else is handed on as text, and validated as an id (422 when it is not one).
    """

    regex = r"(?!parse(?:$|/))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("id", _IdSegment())
