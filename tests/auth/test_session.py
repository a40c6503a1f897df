"""Browser sessions: an HttpOnly cookie plus a CSRF token that cookie-authenticated writes echo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest

from tests.auth.conftest import assert_unauthenticated
from tests.fixtures.http import guarded_client
from tests.fixtures.otp import previous_code
from tests.fixtures.users import PASSWORD, Account

LOGIN = "/api/v1/auth/login"
LOGOUT_SESSION = "/api/v1/auth/logout-session"
ME = "/api/v1/users/me"
COOKIE = "parley_session"


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second client with its own cookie jar and no bearer token: the web page."""
    async with guarded_client(app) as c:
        yield c


async def login(browser: httpx.AsyncClient, username: str = "alice", **extra: str) -> str:
    resp = await browser.post(LOGIN, data={"username": username, "password": PASSWORD, **extra})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["csrfToken"])


def new_chat(who: Account | None = None) -> dict[str, Any]:
    return {"type": "group", "title": "from the browser", "memberIds": [who.id] if who else []}


async def test_login_sets_an_httponly_cookie_and_returns_the_csrf_token(
    browser: httpx.AsyncClient, alice: Account
) -> None:
    resp = await browser.post(LOGIN, data={"username": "alice", "password": PASSWORD})
    assert resp.status_code == 200
    assert set(resp.json()) == {"csrfToken"}
    set_cookie = resp.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "samesite=lax" in set_cookie.lower()
    cookie_value = browser.cookies[COOKIE]
    assert cookie_value
    assert cookie_value not in resp.text  # the session token is only in the cookie
    assert resp.json()["csrfToken"] != cookie_value


async def test_cookie_authenticates_reads(browser: httpx.AsyncClient, alice: Account) -> None:
    await login(browser)
    resp = await browser.get(ME)
    assert resp.status_code == 200
    assert resp.json()["id"] == alice.id
    assert (await browser.get("/api/v1/chats")).status_code == 200


async def test_cookie_write_without_csrf_header_is_403(
    browser: httpx.AsyncClient, alice: Account
) -> None:
    await login(browser)
    resp = await browser.post("/api/v1/chats", json=new_chat())
    assert resp.status_code == 403
    assert "detail" in resp.json()
    assert (await browser.get("/api/v1/chats")).json()["items"] == []


async def test_cookie_write_with_a_wrong_csrf_header_is_403(
    browser: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await login(browser)
    for wrong in ("wrong", csrf[:-1], csrf.upper() if csrf.upper() != csrf else "x" + csrf):
        resp = await browser.post("/api/v1/chats", json=new_chat(), headers={"X-CSRF-Token": wrong})
        assert resp.status_code == 403, wrong


async def test_cookie_write_with_the_csrf_header_works(
    browser: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    csrf = await login(browser)
    headers = {"X-CSRF-Token": csrf}
    created = await browser.post("/api/v1/chats", json=new_chat(bob), headers=headers)
    assert created.status_code == 201, created.text
    chat_id = created.json()["id"]
    assert created.json()["creatorId"] == alice.id
    sent = await browser.post(
        f"/api/v1/chats/{chat_id}/messages", json={"text": "hi"}, headers=headers
    )
    assert sent.status_code == 201
    message_id = sent.json()["id"]
    # PATCH and DELETE are writes too.
    no_csrf_patch = await browser.patch(f"/api/v1/messages/{message_id}", json={"text": "x"})
    assert no_csrf_patch.status_code == 403
    no_csrf_delete = await browser.delete(f"/api/v1/messages/{message_id}")
    assert no_csrf_delete.status_code == 403
    edited = await browser.patch(
        f"/api/v1/messages/{message_id}", json={"text": "edited"}, headers=headers
    )
    assert edited.status_code == 200
    deleted = await browser.delete(f"/api/v1/messages/{message_id}", headers=headers)
    assert deleted.status_code == 204


async def test_one_sessions_csrf_token_does_not_fit_another(
    app: Any, browser: httpx.AsyncClient, alice: Account
) -> None:
    first_csrf = await login(browser)
    async with guarded_client(app) as second:
        second_csrf = await login(second)
        resp = await second.post(
            "/api/v1/chats", json=new_chat(), headers={"X-CSRF-Token": first_csrf}
        )
        assert resp.status_code == 403
        resp = await second.post(
            "/api/v1/chats", json=new_chat(), headers={"X-CSRF-Token": second_csrf}
        )
        assert resp.status_code == 201


async def test_bearer_requests_need_no_csrf_header(
    client: httpx.AsyncClient, alice: Account
) -> None:
    resp = await client.post("/api/v1/chats", json=new_chat(), headers=alice.headers)
    assert resp.status_code == 201


async def test_logout_session_needs_the_csrf_header(
    browser: httpx.AsyncClient, alice: Account
) -> None:
    await login(browser)
    assert (await browser.post(LOGOUT_SESSION)).status_code == 403
    assert (await browser.get(ME)).status_code == 200


async def test_logout_session_kills_the_session_server_side(
    app: Any, browser: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await login(browser)
    old_cookie = browser.cookies[COOKIE]
    resp = await browser.post(LOGOUT_SESSION, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 204
    assert COOKIE in resp.headers["set-cookie"]  # the browser is told to drop it
    assert_unauthenticated(await browser.get(ME))
    # Replaying the old cookie by hand does not work either: the session is gone.
    async with guarded_client(app) as replay:
        cookie = {"Cookie": f"{COOKIE}={old_cookie}"}
        assert_unauthenticated(await replay.get(ME, headers=cookie))
        again = await replay.post(
            "/api/v1/chats", json=new_chat(), headers={**cookie, "X-CSRF-Token": csrf}
        )
        assert_unauthenticated(again)


async def test_logout_session_ends_only_that_session(
    app: Any, browser: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await login(browser)
    async with guarded_client(app) as other:
        await login(other)
        await browser.post(LOGOUT_SESSION, headers={"X-CSRF-Token": csrf})
        assert (await other.get(ME)).status_code == 200


async def test_bad_login_sets_no_cookie(browser: httpx.AsyncClient, alice: Account) -> None:
    resp = await browser.post(LOGIN, data={"username": "alice", "password": "wrong-password"})
    assert_unauthenticated(resp)
    assert "set-cookie" not in resp.headers
    unknown = await browser.post(LOGIN, data={"username": "nobody", "password": "wrong-password"})
    assert unknown.json() == resp.json()


async def test_unknown_cookie_is_401(browser: httpx.AsyncClient, alice: Account) -> None:
    assert_unauthenticated(await browser.get(ME, headers={"Cookie": f"{COOKIE}=made-up"}))
    assert_unauthenticated(
        await browser.post(
            "/api/v1/chats",
            json=new_chat(),
            headers={"Cookie": f"{COOKIE}=made-up", "X-CSRF-Token": "x"},
        )
    )


async def test_session_login_needs_the_otp_when_2fa_is_on(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, alice: Account
) -> None:
    secret = (await client.post("/api/v1/auth/otp/setup", headers=alice.headers)).json()["secret"]
    # The previous step's code (still accepted): the current one stays unused for the login.
    previous = await previous_code(secret)
    enable = await client.post(
        "/api/v1/auth/otp/enable", json={"code": previous}, headers=alice.headers
    )
    assert enable.status_code == 204
    resp = await browser.post(LOGIN, data={"username": "alice", "password": PASSWORD})
    assert_unauthenticated(resp)
    assert resp.json()["detail"] == "otp_required"
    assert "set-cookie" not in resp.headers
    await login(browser, otp=pyotp.TOTP(secret).now())
    assert (await browser.get(ME)).status_code == 200


async def test_login_form_is_validated(browser: httpx.AsyncClient) -> None:
    assert (await browser.post(LOGIN, data={"username": "alice"})).status_code == 422
    assert (await browser.post(LOGIN, json={"username": "a", "password": "b"})).status_code == 422
