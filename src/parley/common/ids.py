"""Ids: positive 64-bit integers, the one bound every id in a request is checked against."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

MAX_ID = 2**63 - 1
"""The largest id the database stores (BIGINT); a larger one would overflow its driver."""

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id in a request body."""

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in a route's path."""
