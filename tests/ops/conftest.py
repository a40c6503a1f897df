"""Every request here goes through a client that refuses 5xx answers; hashing is cheap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.ops.harness import guarded_client, use_cheap_password_hashing


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's in-process client; any 5xx answer or traceback fails the test."""
    async with guarded_client(app) as c:
        yield c


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_cheap_password_hashing(monkeypatch)
