"""Shared by the foundation tests: a client that refuses 5xx answers, and cheap hashing.

Every request these tests make goes through `guarded_client`, so "never a 500 for bad input"
is checked on every call, not only where a test remembers to assert it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from parley.auth import passwords

BASE_URL = "http://parley.test"


async def reject_server_errors(response: httpx.Response) -> None:
    """httpx response hook: a server error or a leaked traceback fails the calling test."""
    await response.aread()
    request = response.request
    where = f"{request.method} {request.url.path}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:500]}"
    assert "Traceback" not in response.text, f"{where} leaked a traceback: {response.text[:500]}"


@asynccontextmanager
async def guarded_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for `app` whose every answer is checked by `reject_server_errors`."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=BASE_URL,
        event_hooks={"response": [reject_server_errors]},
    ) as client:
        yield client


CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def use_cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with tiny costs: the same code paths, without ~0.4 s of CPU per hash and check."""
    monkeypatch.setattr(passwords, "_hasher", lambda: CHEAP_HASHER)
    monkeypatch.setattr(passwords, "_dummy_hash", lambda: CHEAP_HASHER.hash("dummy"))
