"""Prometheus metrics labelled by route template, and request ids on every answer."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.fixtures.users import Account

REQUESTS = "parley_http_requests_total"


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of one sample in Prometheus text, 0 when it is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


async def metrics(client: httpx.AsyncClient) -> str:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return resp.text


async def test_a_head_request_is_answered_like_get(client: httpx.AsyncClient) -> None:
    """Some probes check an endpoint with HEAD: it answers as GET does, without the body."""
    resp = await client.head("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await client.post("/api/v1/chats", json={"type": "group"}, headers=alice.headers)
    chat_id = chat.json()["id"]
    labels = {"method": "GET", "route": "/api/v1/chats/{chat_id}", "status": "200"}
    missing = {**labels, "status": "404"}
    before = await metrics(client)
    for _ in range(3):
        await client.get(f"/api/v1/chats/{chat_id}", headers=alice.headers)
    await client.get("/api/v1/chats/987654", headers=alice.headers)
    after = await metrics(client)
    assert sample(after, REQUESTS, labels) - sample(before, REQUESTS, labels) == 3
    assert sample(after, REQUESTS, missing) - sample(before, REQUESTS, missing) == 1
    # Concrete ids never become label values (that would grow without bound).
    assert f'route="/api/v1/chats/{chat_id}"' not in after
    assert 'route="/api/v1/chats/987654"' not in after


async def test_the_exposition_has_the_http_families(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/health/live")
    text = await metrics(client)
    assert f"# TYPE {REQUESTS} counter" in text
    assert "# TYPE parley_http_request_duration_seconds histogram" in text
    assert 'route="/api/v1/health/live"' in text


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient, alice: Account) -> None:
    answers = [
        await client.get("/api/v1/health/live"),
        await client.get("/api/v1/users/me"),  # 401
        await client.get("/api/v1/chats/987654", headers=alice.headers),  # 404
        await client.post("/api/v1/chats", json={}, headers=alice.headers),  # 422
        await client.get("/api/v1/nowhere"),  # unrouted
        await client.get("/metrics"),
    ]
    ids = [resp.headers.get("x-request-id") for resp in answers]
    for request_id in ids:
        assert request_id
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("request_id", ["abc-123", "trace.id:42_x", "a" * 128])
async def test_a_valid_client_request_id_is_echoed(
    client: httpx.AsyncClient, request_id: str
) -> None:
    resp = await client.get("/api/v1/health/live", headers={"X-Request-ID": request_id})
    assert resp.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id", ["", "a" * 129, "has space", "semi;colon", "new\\nline", "ünïcode"]
)
async def test_an_invalid_client_request_id_is_replaced(
    client: httpx.AsyncClient, request_id: str
) -> None:
    resp = await client.get(
        "/api/v1/health/live", headers={"X-Request-ID": request_id.encode("utf-8")}
    )
    echoed = resp.headers["x-request-id"]
    assert echoed != request_id
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


async def test_only_one_request_id_header(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/health/live", headers={"X-Request-ID": "mine"})
    assert resp.headers.get_list("x-request-id") == ["mine"]
