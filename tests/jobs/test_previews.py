"""Link previews: pending on post, resolved by a job, written back only while still wanted."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event, func, select

from parley.chats.models import MessagePreview
from parley.jobs.models import Page
from tests.fixtures.users import Account
from tests.jobs.conftest import listening, wait_for
from tests.jobs.pageserver import PageServer, running_page_server


async def make_chat(client: httpx.AsyncClient, owner: Account, *members: Account) -> int:
    resp = await client.post(
        "/api/v1/chats",
        json={"type": "group", "title": "links", "memberIds": [m.id for m in members]},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def send(
    client: httpx.AsyncClient, author: Account, chat_id: int, text: str
) -> dict[str, Any]:
    resp = await client.post(
        f"/api/v1/chats/{chat_id}/messages", json={"text": text}, headers=author.headers
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def resolved(data: dict[str, Any]) -> bool:
    return all(p["status"] != "pending" for p in data["previews"])


async def test_links_in_a_message_get_previews(
    app: Any, client: httpx.AsyncClient, alice: Account, bob: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice, bob)
    first, second = pages.url("/page/one"), pages.url("/page/two")
    async with listening(app, bob.id) as events:
        message = await send(client, alice, chat, f"see {first}, and ({second}).")
        assert message["previews"] == [
            {
                "url": url,
                "status": "pending",
                "title": None,
                "description": None,
                "imageUrl": None,
                "siteName": None,
            }
            for url in (first, second)
        ]
        created = await events.next("message.created")
        assert created["previews"] == message["previews"]
        updated = await events.next(
            "message.updated", lambda d: d["id"] == message["id"] and resolved(d)
        )
    assert updated["text"] == message["text"]
    assert [p["url"] for p in updated["previews"]] == [first, second]
    one = updated["previews"][0]
    assert one == {
        "url": first,
        "status": "ready",
        "title": "Page one",
        "description": "About one",
        "imageUrl": pages.url("/img/one.png"),
        "siteName": "Test site",
    }
    assert updated["previews"][1]["title"] == "Page two"

    listing = await client.get(f"/api/v1/chats/{chat}/messages", headers=bob.headers)
    assert listing.json()["items"][0]["previews"] == updated["previews"]
    chats = await client.get("/api/v1/chats", headers=bob.headers)
    assert chats.json()["items"][0]["lastMessage"]["previews"] == updated["previews"]


async def test_at_most_five_distinct_links_in_order(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice)
    urls = [pages.url(f"/page/n{i}") for i in range(7)]
    text = " ".join([urls[0], urls[1], urls[0], "ftp://not.web/x", *urls[2:]])
    async with listening(app, alice.id) as events:
        message = await send(client, alice, chat, text)
        assert [p["url"] for p in message["previews"]] == urls[:5]
        done = await events.next("message.updated", resolved)
    assert [p["status"] for p in done["previews"]] == ["ready"] * 5
    assert pages.count("/page/n5") == pages.count("/page/n6") == 0


async def test_a_broken_link_gets_a_failed_preview(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice)
    async with listening(app, alice.id) as events:
        message = await send(client, alice, chat, pages.url("/status/404/preview"))
        updated = await events.next("message.updated", lambda d: d["id"] == message["id"])
    assert updated["previews"] == [
        {
            "url": pages.url("/status/404/preview"),
            "status": "failed",
            "title": None,
            "description": None,
            "imageUrl": None,
            "siteName": None,
        }
    ]


async def test_an_edit_that_removes_the_link_wins_over_a_late_preview(
    app: Any, client: httpx.AsyncClient, alice: Account, bob: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice, bob)
    url = pages.url("/hold/stale")
    async with listening(app, bob.id) as events:
        message = await send(client, alice, chat, f"slow page: {url}")
        # The preview job is fetching the page right now...
        assert await app_wait(pages.arrived("stale"))
        # ...when the author edits the link away.
        edit = await client.patch(
            f"/api/v1/messages/{message['id']}", json={"text": "never mind"}, headers=alice.headers
        )
        assert edit.status_code == 200, edit.text
        assert edit.json()["previews"] == []
        edited = await events.next("message.updated", lambda d: d["id"] == message["id"])
        assert edited["previews"] == []
        pages.release("stale")

        # The job stores the page and decides about the preview in one transaction.
        db = app.state.resources.db

        async def page_stored() -> bool:
            async with db.session() as session:
                return await session.scalar(select(Page.id).where(Page.url == url)) is not None

        await wait_for(page_stored, what="the stale job to finish")
        later = [e for e in events.pending() if e["type"] == "message.updated"]
    assert later == []
    listing = await client.get(f"/api/v1/chats/{chat}/messages", headers=bob.headers)
    assert listing.json()["items"][0]["previews"] == []
    assert listing.json()["items"][0]["text"] == "never mind"


async def app_wait(flag: Any, timeout: float = 30.0) -> bool:
    import asyncio

    return bool(await asyncio.to_thread(flag.wait, timeout))


async def test_an_edit_that_adds_a_link_gets_its_preview_and_keeps_the_others(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice)
    first, second = pages.url("/page/kept"), pages.url("/page/added")
    async with listening(app, alice.id) as events:
        message = await send(client, alice, chat, first)
        ready = await events.next(
            "message.updated", lambda d: d["id"] == message["id"] and resolved(d)
        )
        edit = await client.patch(
            f"/api/v1/messages/{message['id']}",
            json={"text": f"{second} then {first}"},
            headers=alice.headers,
        )
        assert [(p["url"], p["status"]) for p in edit.json()["previews"]] == [
            (second, "pending"),
            (first, "ready"),
        ]
        final = await events.next(
            "message.updated", lambda d: d["id"] == message["id"] and resolved(d)
        )
    assert final["previews"][1] == ready["previews"][0]
    assert final["previews"][0]["title"] == "Page added"
    assert pages.count("/page/kept") == 1


async def test_message_listings_load_previews_in_one_query(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice)
    async with listening(app, alice.id) as events:
        ids = set()
        for i in range(6):
            text = f"{pages.url(f'/page/q{i}')} {pages.url(f'/page/r{i}')}"
            ids.add((await send(client, alice, chat, text))["id"])
        while ids:  # let the worker finish, so that only the listing queries the table
            done = await events.next("message.updated", resolved)
            ids.discard(done["id"])
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Not the relay's housekeeping, which looks for pending previews now and then on
        # the same engine (`fail_stale_previews`): only what reads previews by message.
        if "message_previews" in statement and "message_previews.status = " not in statement:
            statements.append(statement)

    engine = app.state.resources.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        resp = await client.get(f"/api/v1/chats/{chat}/messages", headers=alice.headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    items = resp.json()["items"]
    assert len(items) == 6
    assert all(len(m["previews"]) == 2 for m in items)
    assert len(statements) == 1, statements


async def test_deleting_a_message_drops_its_previews(
    app: Any, client: httpx.AsyncClient, alice: Account, pages: PageServer
) -> None:
    chat = await make_chat(client, alice)
    message = await send(client, alice, chat, pages.url("/page/deleted"))
    resp = await client.delete(f"/api/v1/messages/{message['id']}", headers=alice.headers)
    assert resp.status_code == 204
    async with app.state.resources.db.session() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(MessagePreview)
            .where(MessagePreview.message_id == message["id"])
        )
    assert left == 0


async def test_an_ipv6_literal_link_gets_a_preview_like_any_other(
    app: Any, client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    chat = await make_chat(client, alice, bob)
    with running_page_server("::1") as v6:
        url = v6.url("/page/six")
        assert url.startswith("http://[::1]:")
        async with listening(app, bob.id) as events:
            message = await send(client, alice, chat, f"over IPv6: {url}.")
            assert [p["url"] for p in message["previews"]] == [url]
            ready = await events.next("message.updated", resolved)
    assert ready["previews"][0]["status"] == "ready"
    assert ready["previews"][0]["title"]
