"""Parse jobs end to end: queued, run by the worker, stored, reported live to the owner."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, text

from parley.auth.models import User
from parley.jobs.models import Job
from tests.auth.conftest import assert_unauthenticated
from tests.fixtures.users import Account, register
from tests.jobs.conftest import listening, post_job, wait_job
from tests.jobs.pageserver import PageServer


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_parse_job_stores_the_page_and_reports_each_step(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    url = pages.url("/page/first")
    async with listening(app, alice.id) as events:
        job = await post_job(client, alice, url)
        assert job["status"] == "queued"
        assert (job["kind"], job["url"], job["progress"], job["attempts"]) == ("parse", url, 0, 0)
        assert job["pageId"] is None
        assert job["startedAt"] is None

        steps = []
        while True:
            update = await events.next("job.updated", lambda d: d["id"] == job["id"])
            steps.append((update["status"], update["progress"]))
            if update["status"] in ("succeeded", "failed"):
                break
    assert steps == [
        ("queued", 0),
        ("running", 10),
        ("running", 60),
        ("running", 90),
        ("succeeded", 100),
    ]

    got = await client.get(f"/api/v1/jobs/{job['id']}", headers=alice.headers)
    assert got.status_code == 200
    done = got.json()
    assert done == update  # the event carries the Job exactly as GET answers it
    assert done["attempts"] == 1
    assert done["error"] is None
    assert ts(done["createdAt"]) <= ts(done["startedAt"]) <= ts(done["finishedAt"])

    page = await client.get(f"/api/v1/pages/{done['pageId']}", headers=alice.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["id"] == done["pageId"]
    assert body["url"] == url
    assert body["finalUrl"] == url
    assert (body["statusCode"], body["contentType"]) == (200, "text/html; charset=utf-8")
    assert body["title"] == "Page first"
    assert body["description"] == "About first"
    assert body["imageUrl"] == pages.url("/img/first.png")
    assert (body["siteName"], body["lang"]) == ("Test site", "en")
    assert "Hello first" in body["text"]
    assert body["links"] == [
        {"href": pages.url("/page/first-next"), "text": "Next"},
        {"href": "https://example.org/x", "text": "Elsewhere"},
    ]
    assert ts(body["fetchedAt"]).tzinfo is not None


@pytest.mark.services_only
async def test_a_stored_page_s_text_is_compressed_with_lz4(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    """pglz took ~2.8 ms of PostgreSQL's CPU per stored page, lz4 ~0.6 (migration 0006)."""
    url = pages.url("/long/200/compressed")
    done = await wait_job(client, alice, (await post_job(client, alice, url))["id"])
    assert done["status"] == "succeeded"
    async with app.state.resources.db.session() as session:
        methods = dict(
            (
                await session.execute(
                    text(
                        "SELECT attname, attcompression::text FROM pg_attribute"
                        " WHERE attrelid = 'pages'::regclass AND attname IN ('text', 'links')"
                    )
                )
            ).all()
        )
        stored = await session.scalar(
            text("SELECT pg_column_compression(text) FROM pages WHERE id = :id"),
            {"id": done["pageId"]},
        )
    assert methods == {"text": "l", "links": "l"}
    assert stored == "lz4"


@pytest.mark.services_only
async def test_a_worker_does_not_subscribe_to_live_delivery(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    """Only processes with sockets subscribe: a worker would receive every live event of
    the deployment, each job's own included, only to drop it."""
    done = await wait_job(
        client, alice, (await post_job(client, alice, pages.url("/page/s")))["id"]
    )
    assert done["status"] == "succeeded"  # the worker's bus is open and has published
    bus = app.state.resources.bus
    subscribers = await bus.client.pubsub_numsub(*bus.layout.channels())
    assert [count for _, count in subscribers] == [1] * len(subscribers)  # this app alone


async def test_a_token_that_outlived_its_user_queues_nothing(
    app: Any, client: httpx.AsyncClient, pages: PageServer
) -> None:
    gone = await register(client, "gone")
    async with app.state.resources.db.session() as session:
        await session.execute(delete(User).where(User.id == gone.id))
        await session.commit()
    resp = await client.post(
        "/api/v1/jobs/parse", json={"url": pages.url("/page/gone")}, headers=gone.headers
    )
    assert_unauthenticated(resp)
    async with app.state.resources.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    assert pages.count("/page/gone") == 0


async def test_a_recent_page_is_reused_instead_of_fetched_again(
    client: httpx.AsyncClient, alice: Account, bob: Account, pages: PageServer
) -> None:
    url = pages.url("/page/cached")
    first = await wait_job(client, alice, (await post_job(client, alice, url))["id"])
    second = await wait_job(client, bob, (await post_job(client, bob, url))["id"])
    assert first["status"] == second["status"] == "succeeded"
    assert second["pageId"] == first["pageId"]
    assert second["progress"] == 100
    assert second["attempts"] == 1
    assert pages.count("/page/cached") == 1
    # Bob's job points at the page, so he may read it too.
    page = await client.get(f"/api/v1/pages/{second['pageId']}", headers=bob.headers)
    assert page.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "not a url",
        "http://",
        "https:///path-only",
        "http://user:secret@example.com/",
        "http://example.com:99999/",
        "http://example.com/" + "a" * 2100,
        "",
    ],
)
async def test_only_http_urls_are_accepted(
    client: httpx.AsyncClient, alice: Account, url: str
) -> None:
    resp = await client.post("/api/v1/jobs/parse", json={"url": url}, headers=alice.headers)
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://example.com/", "runAt": "2030-01-01T10:00:00"},  # no offset
        {"url": "http://example.com/", "runAt": "tomorrow"},
        {
            "url": "http://example.com/",
            "runAt": "9999-12-31T23:59:59-14:00",
        },  # past year 9999 in UTC
        {"url": "http://example.com/", "extra": 1},
        {},
    ],
)
async def test_bad_job_bodies_are_422(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any]
) -> None:
    resp = await client.post("/api/v1/jobs/parse", json=body, headers=alice.headers)
    assert resp.status_code == 422, resp.text


async def test_jobs_need_authentication(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/jobs/parse", json={"url": "http://example.com/"})
    assert resp.status_code == 401
    assert (await client.get("/api/v1/jobs")).status_code == 401


async def test_run_at_is_honoured(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    job = await post_job(client, alice, pages.url("/page/later"), runAt=run_at.isoformat())
    assert ts(job["runAt"]) == run_at
    assert job["status"] == "queued"
    done = await wait_job(client, alice, job["id"])
    assert done["status"] == "succeeded"
    assert ts(done["startedAt"]) >= run_at
    assert pages.count("/page/later") == 1


async def test_run_at_with_another_offset_and_in_the_past(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    run_at = datetime.now(timezone(timedelta(hours=2))) + timedelta(seconds=1)
    later = await post_job(client, alice, pages.url("/page/offset"), runAt=run_at.isoformat())
    assert ts(later["runAt"]) == run_at
    assert ts(later["runAt"]).utcoffset() == timedelta(0)  # answered in UTC

    past = await post_job(client, alice, pages.url("/page/past"), runAt="2001-01-01T00:00:00Z")
    assert ts(past["runAt"]) >= ts(past["createdAt"])  # in the past means now
    assert (await wait_job(client, alice, past["id"]))["status"] == "succeeded"
    assert (await wait_job(client, alice, later["id"]))["status"] == "succeeded"


async def test_a_cancelled_job_never_runs(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    run_at = datetime.now(UTC) + timedelta(seconds=1.5)
    job = await post_job(client, alice, pages.url("/page/cancelled"), runAt=run_at.isoformat())
    async with listening(app, alice.id) as events:
        resp = await client.delete(f"/api/v1/jobs/{job['id']}", headers=alice.headers)
        assert resp.status_code == 204
        # The job's own "queued" event may reach the listener late (the relay publishes it
        # when the fast path was closed): the first update after it is what counts.
        update = await events.next(
            "job.updated", lambda d: d["id"] == job["id"] and d["status"] != "queued"
        )
    assert update["status"] == "cancelled"
    assert update["finishedAt"] is not None

    # A job due after the cancelled one has run: so has the cancelled one's message.
    after = run_at + timedelta(seconds=0.5)
    witness = await post_job(client, alice, pages.url("/page/witness"), runAt=after.isoformat())
    assert (await wait_job(client, alice, witness["id"]))["status"] == "succeeded"
    got = (await client.get(f"/api/v1/jobs/{job['id']}", headers=alice.headers)).json()
    assert got["status"] == "cancelled"
    assert got["attempts"] == 0
    assert got["startedAt"] is None
    assert pages.count("/page/cancelled") == 0

    again = await client.delete(f"/api/v1/jobs/{job['id']}", headers=alice.headers)
    assert again.status_code == 409


async def test_a_finished_job_cannot_be_cancelled(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    job = await post_job(client, alice, pages.url("/page/finished"))
    await wait_job(client, alice, job["id"])
    resp = await client.delete(f"/api/v1/jobs/{job['id']}", headers=alice.headers)
    assert resp.status_code == 409
    assert "succeeded" in resp.json()["detail"]
    missing = await client.delete("/api/v1/jobs/999999", headers=alice.headers)
    assert missing.status_code == 404


async def test_jobs_and_their_pages_are_the_owners_alone(
    app: Any, client: httpx.AsyncClient, alice: Account, bob: Account, pages: PageServer
) -> None:
    async with listening(app, alice.id) as alice_events, listening(app, bob.id) as bob_events:
        job = await post_job(client, alice, pages.url("/page/private"))
        done = await alice_events.next(
            "job.updated", lambda d: d["id"] == job["id"] and d["status"] == "succeeded"
        )
        assert [e for e in bob_events.pending() if e["type"] == "job.updated"] == []

    for method in ("GET", "DELETE"):
        resp = await client.request(method, f"/api/v1/jobs/{job['id']}", headers=bob.headers)
        assert resp.status_code == 404, (method, resp.text)
    page = await client.get(f"/api/v1/pages/{done['pageId']}", headers=bob.headers)
    assert page.status_code == 404
    listing = await client.get("/api/v1/jobs", headers=bob.headers)
    assert listing.json() == {"items": [], "nextCursor": None}
    assert (await client.get("/api/v1/pages/999999", headers=alice.headers)).status_code == 404


async def test_jobs_are_listed_newest_first_page_by_page(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ids = [
        (await post_job(client, alice, f"http://example.com/{i}", runAt=later))["id"]
        for i in range(5)
    ]
    await post_job(client, bob, "http://example.com/bob", runAt=later)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/api/v1/jobs", params=params, headers=alice.headers)
        assert resp.status_code == 200
        body = resp.json()
        seen += [j["id"] for j in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await client.get("/api/v1/jobs", params={"cursor": "nope"}, headers=alice.headers)
    assert bad.status_code == 422
    for job_id in ids:  # leave nothing queued behind
        await client.delete(f"/api/v1/jobs/{job_id}", headers=alice.headers)


async def test_run_at_must_be_a_date_time_not_a_number(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    for run_at in (0, 1_800_000_000, 1.5):
        resp = await client.post(
            "/api/v1/jobs/parse",
            json={"url": pages.url("/page/n"), "runAt": run_at},
            headers=alice.headers,
        )
        assert resp.status_code == 422, (run_at, resp.text)


async def test_concurrent_cancels_cancel_once(
    client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    job = await post_job(client, alice, pages.url("/page/c"), runAt=later.isoformat())
    answers = await asyncio.gather(
        *(client.delete(f"/api/v1/jobs/{job['id']}", headers=alice.headers) for _ in range(8))
    )
    assert sorted(r.status_code for r in answers) == [204] + [409] * 7
    final = (await client.get(f"/api/v1/jobs/{job['id']}", headers=alice.headers)).json()
    assert final["status"] == "cancelled"
