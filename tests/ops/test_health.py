"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


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
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise ConnectionRefusedError("broker at nowhere:6379 refused")

    checks = app.state.resources.extras["health_checks"]
    monkeypatch.setitem(checks, "broker", broken)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as plain:
        resp = await plain.get("/api/v1/health")
        live = await plain.get("/api/v1/health/live")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] != "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["pubsub"] == "ok"
    assert "refused" in body["checks"]["broker"]
    assert "Traceback" not in resp.text
    assert live.status_code == 200  # the process itself is alive
