"""Liveness and readiness: the readiness check does a real round trip to each dependency."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from parley.common.errors import Unavailable
from parley.deps import ResourcesDep
from parley.resources import HealthCheck

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


class LiveOut(BaseModel):
    """The process is alive."""

    status: Literal["ok"]


class HealthOut(BaseModel):
    """Each dependency's check: `ok`, or what failed."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


@router.get("/health/live")
async def live() -> LiveOut:
    """200 while the process runs."""
    return LiveOut(status="ok")


async def _run(check: HealthCheck) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # any failure is a finding, reported by name
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


@router.get(
    "/health",
    response_model=HealthOut,
    responses={
        503: {
            "model": HealthOut,
            "description": "a dependency is down",
            "headers": {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
            },
        }
    },
)
async def health(resources: ResourcesDep) -> JSONResponse:
    """200 when the database, pub/sub and broker all work; 503 naming the one that does not.

    `pubsub` is ok only while this process can deliver live events: subscribed, with the
    subscriptions confirmed, and hearing from Redis.
    """
    return await health_report(resources.health_checks())


async def health_report(checks: dict[str, HealthCheck]) -> JSONResponse:
    """200 with every check `ok`, else 503; each check's result by name."""
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    ok = all(r == "ok" for r in results)
    body = {"status": "ok" if ok else "unavailable", "checks": report}
    if ok:
        return JSONResponse(body)
    # Every 503 says when to look again (the contract); a probe may ignore it.
    return JSONResponse(body, status_code=503, headers=Unavailable("").headers)
