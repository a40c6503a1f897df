"""Plan limits where they bite: members of a group, parse jobs a day. With billing off
there is no limit at all. In-process (cheap password hashing: it takes many users)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.billing.fakestripe import FakeStripe
from tests.fixtures.users import Account, register

pytestmark = pytest.mark.timeout(120)
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).isoformat()


async def people(client: httpx.AsyncClient, prefix: str, count: int) -> list[int]:
    ids = []
    for n in range(count):
        resp = await client.post(
            "/api/v1/auth/register",
            json={"username": f"{prefix}{n}", "password": "correct horse battery"},
        )
        assert resp.status_code == 201, resp.text
        ids.append(int(resp.json()["id"]))
    return ids


async def group(client: httpx.AsyncClient, owner: Account, members: list[int]) -> httpx.Response:
    return await client.post(
        "/api/v1/chats",
        json={"type": "group", "title": "big", "memberIds": members},
        headers=owner.headers,
    )


async def parse_jobs(client: httpx.AsyncClient, who: Account, count: int) -> None:
    for n in range(count):
        resp = await client.post(
            "/api/v1/jobs/parse",
            json={"url": f"http://example.invalid/{n}", "runAt": TOMORROW},
            headers=who.headers,
        )
        assert resp.status_code == 202, resp.text


async def test_free_plan_limits_answer_402_naming_the_limit(
    billing_client: httpx.AsyncClient,
) -> None:
    client = billing_client
    owner = await register(client, "olive")
    members = await people(client, "member", 51)
    over = await group(client, owner, members)  # 52 with the owner
    assert over.status_code == 402, over.text
    assert over.json()["detail"] == "over a limit of the free plan: at most 50 members in a group"

    full = await group(client, owner, members[:49])
    assert full.status_code == 201, full.text
    chat_id = full.json()["id"]
    added = await client.post(
        f"/api/v1/chats/{chat_id}/members", json={"userId": members[50]}, headers=owner.headers
    )
    assert added.status_code == 402, added.text
    assert "50 members in a group" in added.json()["detail"]
    chat = await client.get(f"/api/v1/chats/{chat_id}", headers=owner.headers)
    assert len(chat.json()["members"]) == 50

    await parse_jobs(client, owner, 100)
    over = await client.post(
        "/api/v1/jobs/parse", json={"url": "http://example.invalid/x"}, headers=owner.headers
    )
    assert over.status_code == 402, over.text
    assert over.json()["detail"] == "over a limit of the free plan: at most 100 parse jobs a day"


async def test_plus_allows_a_sixty_member_group(
    billing_client: httpx.AsyncClient, fake_stripe: FakeStripe
) -> None:
    client = billing_client
    owner = await register(client, "petra")
    members = await people(client, "guest", 59)
    assert (await group(client, owner, members)).status_code == 402
    resp = await client.post(
        "/api/v1/billing/subscription",
        json={"paymentMethodId": fake_stripe.card()},
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["plan"] == "plus"
    made = await group(client, owner, members)
    assert made.status_code == 201, made.text
    assert len(made.json()["members"]) == 60


async def test_with_billing_off_there_is_no_limit(client: httpx.AsyncClient) -> None:
    owner = await register(client, "quinn")
    members = await people(client, "crowd", 55)
    made = await group(client, owner, members)
    assert made.status_code == 201, made.text
    await parse_jobs(client, owner, 101)
