"""Plan limits hold under concurrency: requests that would each fit alone, sent at once,
never add up to more than the plan allows (the count and the change are serialized)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.billing.test_limits import TOMORROW, group, people
from tests.fixtures.users import register

pytestmark = pytest.mark.timeout(120)
FREE_GROUP_MEMBERS = 50
FREE_PARSE_JOBS_A_DAY = 100


async def test_concurrent_adds_never_grow_a_group_past_the_plan(
    billing_client: httpx.AsyncClient,
) -> None:
    client = billing_client
    owner = await register(client, "olive")
    members = await people(client, "member", FREE_GROUP_MEMBERS + 4)
    created = await group(client, owner, members[: FREE_GROUP_MEMBERS - 2])  # 49 with the owner
    assert created.status_code == 201, created.text
    chat_id = created.json()["id"]

    # Five newcomers at once, room for one.
    answers = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/chats/{chat_id}/members", json={"userId": who}, headers=owner.headers
            )
            for who in members[FREE_GROUP_MEMBERS - 2 :][:5]
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 402, 402, 402, 402], [a.text for a in answers]
    chat = await client.get(f"/api/v1/chats/{chat_id}", headers=owner.headers)
    assert len(chat.json()["members"]) == FREE_GROUP_MEMBERS


async def test_concurrent_parse_jobs_never_pass_the_daily_limit(
    billing_client: httpx.AsyncClient,
) -> None:
    client = billing_client
    owner = await register(client, "paula")
    tomorrow = TOMORROW  # queued, never run during the test

    async def post(n: int) -> int:
        resp = await client.post(
            "/api/v1/jobs/parse",
            json={"url": f"http://example.invalid/{n}", "runAt": tomorrow},
            headers=owner.headers,
        )
        return resp.status_code

    for n in range(FREE_PARSE_JOBS_A_DAY - 3):
        assert await post(n) == 202
    statuses = sorted(await asyncio.gather(*(post(1000 + n) for n in range(8))))
    assert statuses == [202] * 3 + [402] * 5
    listed = await client.get("/api/v1/jobs", params={"limit": 100}, headers=owner.headers)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == FREE_PARSE_JOBS_A_DAY
