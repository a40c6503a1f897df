"""Liveness and readiness."""

from __future__ import annotations

import httpx

from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.http import guarded_client


async def test_live_is_200_ok(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/health/live")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_health_checks_every_dependency(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/health")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "status": "ok",
        "checks": {"database": "ok", "pubsub": "ok", "broker": "ok"},
    }


async def test_health_needs_no_authentication(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/health", "/api/v1/health/live"):
        assert (await client.get(path, headers={"Authorization": "Bearer junk"})).status_code == 200


async def test_a_failing_dependency_makes_health_503_and_names_it(
    database_url: str, redis_url: str | None
) -> None:
    settings = make_settings(database_url, redis_url, broker_url="redis://127.0.0.1:1/0")
    async with running_app(settings) as app, guarded_client(app, allow={503}) as c:
        resp = await c.get("/api/v1/health")
        live = await c.get("/api/v1/health/live")
    assert resp.status_code == 503
    assert int(resp.headers["Retry-After"]) >= 1  # like every 503
    body = resp.json()
    assert body["status"] != "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["pubsub"] == "ok"
    assert "refused" in body["checks"]["broker"].lower()
    assert "Traceback" not in resp.text
    assert live.status_code == 200  # the process itself is alive
