"""GET /auth/session: a reloaded page learns who is signed in and its CSRF token again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.auth.conftest import assert_unauthenticated
from tests.auth.test_session import COOKIE, LOGOUT_SESSION, login, new_chat
from tests.fixtures.http import guarded_client
from tests.fixtures.users import Account

SESSION = "/api/v1/auth/session"


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with guarded_client(app) as c:
        yield c


async def test_the_session_gives_the_user_and_the_same_csrf_token(
    browser: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await login(browser)
    resp = await browser.get(SESSION)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"user", "csrfToken"}
    assert body["user"]["id"] == alice.id
    assert set(body["user"]) == {"id", "username", "displayName", "createdAt", "otpEnabled"}
    assert body["csrfToken"] == csrf
    assert resp.headers["cache-control"] == "no-store"
    assert browser.cookies[COOKIE] not in resp.text


async def test_a_reloaded_page_writes_with_the_token_it_got_back(app: Any, alice: Account) -> None:
    async with guarded_client(app) as first_load:
        await login(first_load)
        cookie = first_load.cookies[COOKIE]
    # A reload: the same cookie, nothing else kept.
    async with guarded_client(app) as reloaded:
        reloaded.cookies.set(COOKIE, cookie)
        csrf = (await reloaded.get(SESSION)).json()["csrfToken"]
        created = await reloaded.post(
            "/api/v1/chats", json=new_chat(), headers={"X-CSRF-Token": csrf}
        )
        assert created.status_code == 201, created.text


async def test_each_session_has_its_own_csrf_token(app: Any, alice: Account) -> None:
    async with guarded_client(app) as one, guarded_client(app) as two:
        await login(one)
        await login(two)
        first, second = [(await c.get(SESSION)).json()["csrfToken"] for c in (one, two)]
        assert first != second
        refused = await two.post("/api/v1/chats", json=new_chat(), headers={"X-CSRF-Token": first})
        assert refused.status_code == 403


async def test_no_session_is_401(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, alice: Account
) -> None:
    assert_unauthenticated(await browser.get(SESSION))
    assert_unauthenticated(await browser.get(SESSION, headers={"Cookie": f"{COOKIE}=made-up"}))
    # A bearer token is not a browser session.
    assert_unauthenticated(await client.get(SESSION, headers=alice.headers))


async def test_after_logout_the_session_is_gone(browser: httpx.AsyncClient, alice: Account) -> None:
    csrf = await login(browser)
    cookie = browser.cookies[COOKIE]
    assert (await browser.post(LOGOUT_SESSION, headers={"X-CSRF-Token": csrf})).status_code == 204
    assert_unauthenticated(await browser.get(SESSION, headers={"Cookie": f"{COOKIE}={cookie}"}))
