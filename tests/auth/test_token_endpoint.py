"""The token endpoint speaks RFC 6749: the password and refresh_token grants, and `error`
codes that OAuth2 client libraries understand (here Authlib's httpx client)."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import httpx
import jwt
import pytest

from tests.auth.conftest import assert_unauthenticated, bearer
from tests.fixtures.apps import AppWith
from tests.fixtures.http import BASE_URL, guarded_client
from tests.fixtures.otp import previous_code, wrong_code
from tests.fixtures.users import PASSWORD, Account, register

with warnings.catch_warnings():
    # Authlib announces a move to the `httpx2` fork; with httpx it works as before. (Its
    # deprecate module turns its warnings on when imported: silence them after that.)
    import authlib.deprecate

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/users/me"


def assert_oauth_error(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["error"] == error
    assert "detail" in body
    return body


async def test_the_refresh_token_grant_rotates(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": alice.refresh_token}
    )
    assert resp.status_code == 200, resp.text
    pair = resp.json()
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert pair["refresh_token"] != alice.refresh_token
    assert resp.headers["cache-control"] == "no-store"
    assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200
    # The same rotation as /auth/refresh: the new token goes on, there or here.
    onward = await client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refresh_token"]})
    assert onward.status_code == 200


async def test_an_explicit_password_grant(client: httpx.AsyncClient, alice: Account) -> None:
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    resp = await client.post(TOKEN, data=data)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("token", ["never-issued", "x" * 512], ids=["unknown", "long"])
async def test_a_bad_refresh_token_is_invalid_grant(
    client: httpx.AsyncClient, alice: Account, token: str
) -> None:
    resp = await client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": token})
    assert_unauthenticated(resp)
    body = assert_oauth_error(resp, 401, "invalid_grant")
    assert body["error_description"] == body["detail"]


async def test_bad_credentials_are_invalid_grant(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.post(TOKEN, data={"username": "alice", "password": "wrong password"})
    assert_unauthenticated(resp)
    assert_oauth_error(resp, 401, "invalid_grant")


async def test_otp_answers_keep_their_detail(client: httpx.AsyncClient, alice: Account) -> None:
    secret = (await client.post("/api/v1/auth/otp/setup", headers=alice.headers)).json()["secret"]
    previous = await previous_code(secret)  # leaves the current code unused
    enabled = await client.post(
        "/api/v1/auth/otp/enable", json={"code": previous}, headers=alice.headers
    )
    assert enabled.status_code == 204
    resp = await client.post(TOKEN, data={"username": "alice", "password": PASSWORD})
    assert assert_oauth_error(resp, 401, "invalid_grant")["detail"] == "otp_required"
    data = {"username": "alice", "password": PASSWORD, "otp": wrong_code(secret)}
    resp = await client.post(TOKEN, data=data)
    assert assert_oauth_error(resp, 401, "invalid_grant")["detail"] == "invalid_otp"


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"grant_type": "refresh_token"}, "refresh_token"),
        ({"grant_type": "password", "password": PASSWORD}, "username"),
        ({"username": "alice"}, "password"),
        ({}, "username"),
    ],
    ids=["refresh without token", "password without username", "no password", "empty"],
)
async def test_a_missing_field_is_invalid_request(
    client: httpx.AsyncClient, data: dict[str, str], missing: str
) -> None:
    body = assert_oauth_error(await client.post(TOKEN, data=data), 422, "invalid_request")
    assert isinstance(body["detail"], list)
    assert body["detail"][0]["loc"] == ["body", missing]


async def test_a_malformed_field_is_invalid_request(client: httpx.AsyncClient) -> None:
    resp = await client.post(TOKEN, data={"username": "x" * 65, "password": PASSWORD})
    body = assert_oauth_error(resp, 422, "invalid_request")
    assert body["detail"][0]["loc"] == ["body", "username"]


@pytest.mark.parametrize("grant_type", ["client_credentials", "authorization_code", "x" * 64])
async def test_other_grant_types_are_unsupported(
    client: httpx.AsyncClient, grant_type: str
) -> None:
    resp = await client.post(
        TOKEN, data={"grant_type": grant_type, "username": "a", "password": "b"}
    )
    assert_oauth_error(resp, 400, "unsupported_grant_type")


async def test_the_openapi_security_scheme_names_the_refresh_url(client: httpx.AsyncClient) -> None:
    schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    (password_flow,) = (s["flows"]["password"] for s in schemes.values() if s["type"] == "oauth2")
    assert password_flow["tokenUrl"] == TOKEN
    assert password_flow["refreshUrl"] == TOKEN


async def test_authlib_logs_in_and_refreshes_an_expired_token(app_with: AppWith) -> None:
    # JWT `exp` is in whole seconds, so a token lives between ttl - 1 and ttl seconds: two
    # leave at least one for the first request, however slow the machine.
    app = await app_with(access_token_ttl_seconds=2)
    async with guarded_client(app) as plain:
        await register(plain, "alice")
        await _log_in_and_refresh_with_authlib(app, plain)


async def _log_in_and_refresh_with_authlib(app: Any, plain: httpx.AsyncClient) -> None:
    updated: list[dict[str, Any]] = []

    async def update_token(token: dict[str, Any], refresh_token: str | None = None) -> None:
        updated.append(token)

    async with AsyncOAuth2Client(
        client_id="parley-test",
        token_endpoint_auth_method="none",
        token_endpoint=BASE_URL + TOKEN,
        update_token=update_token,
        leeway=0,
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
    ) as oauth:
        first = await oauth.fetch_token(BASE_URL + TOKEN, username="alice", password=PASSWORD)
        assert (await oauth.get(ME)).json()["username"] == "alice"
        assert updated == []
        # The token's short life is what is tested: wait it out as both sides count it, the
        # server by the token's `exp` and Authlib by the `expires_at` it computed on receipt.
        assert oauth.token is not None
        expires = max(_expires(first["access_token"]), float(oauth.token["expires_at"]))
        await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
        assert_unauthenticated(await plain.get(ME, headers=bearer(first["access_token"])))
        # Authlib sees the token expired, refreshes it at the token endpoint, and goes on.
        me = await oauth.get(ME)
        assert me.status_code == 200, me.text
        assert len(updated) == 1
        assert updated[0]["refresh_token"] != first["refresh_token"]
        assert updated[0]["access_token"] != first["access_token"]


def _expires(access_token: str) -> float:
    """The `exp` claim of a token (read, not verified: the server verifies it)."""
    return float(jwt.decode(access_token, options={"verify_signature": False})["exp"])


async def test_authlib_raises_on_refusals(app: Any, alice: Account) -> None:
    async with AsyncOAuth2Client(
        client_id="parley-test",
        token_endpoint_auth_method="none",
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
    ) as oauth:
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(BASE_URL + TOKEN, username="alice", password="wrong one")
        assert refused.value.error == "invalid_grant"
        assert oauth.token is None
        with pytest.raises(OAuthError) as stale:
            await oauth.refresh_token(BASE_URL + TOKEN, refresh_token="never-issued")
        assert stale.value.error == "invalid_grant"


async def test_every_answer_with_a_credential_or_secret_is_not_cached(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """RFC 6749 §5.1 for the token endpoint; the same for the other routes that hand out a
    token pair, a session cookie with its CSRF token, or a TOTP secret."""
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": alice.refresh_token}
    )
    login = await client.post(
        "/api/v1/auth/login", data={"username": "alice", "password": PASSWORD}
    )
    setup = await client.post("/api/v1/auth/otp/setup", headers=alice.headers)
    for resp in (refreshed, login, setup):
        assert resp.status_code == 200, (resp.url, resp.text)
        assert resp.headers["cache-control"] == "no-store", resp.url


@pytest.mark.parametrize(
    "form",
    [
        "grant_type=password&grant_type=refresh_token&username=alice&password=" + PASSWORD,
        "grant_type=refresh_token&grant_type=password&username=alice&password=" + PASSWORD,
        f"username=bob&username=alice&password={PASSWORD}",
    ],
    ids=["grant-type-first-password", "grant-type-first-refresh", "username"],
)
async def test_a_parameter_sent_twice_is_invalid_request(
    client: httpx.AsyncClient, alice: Account, form: str
) -> None:
    """RFC 6749 §3.2: not the last value winning, which a proxy may read differently."""
    resp = await client.post(
        TOKEN, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    body = assert_oauth_error(resp, 422, "invalid_request")
    assert body["detail"][0]["type"] == "repeated"


async def test_a_form_that_cannot_be_read_is_invalid_request(client: httpx.AsyncClient) -> None:
    too_many = "&".join(f"f{i}=x" for i in range(1001))
    no_boundary = ("a=1", "multipart/form-data")
    nameless = (
        b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--\r\n",
        "multipart/form-data; boundary=B",
    )
    for content, content_type in [
        (too_many, "application/x-www-form-urlencoded"),
        no_boundary,
        nameless,
    ]:
        resp = await client.post(TOKEN, content=content, headers={"Content-Type": content_type})
        body = assert_oauth_error(resp, 422, "invalid_request")
        assert body["detail"][0]["loc"] == ["body"], body
        login = await client.post(
            "/api/v1/auth/login", content=content, headers={"Content-Type": content_type}
        )
        assert login.status_code == 422, login.text


async def test_a_field_sent_as_a_file_is_described_not_dumped(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        TOKEN,
        files={"username": ("name.txt", b"alice", "text/plain")},
        data={"password": PASSWORD},
    )
    body = assert_oauth_error(resp, 422, "invalid_request")
    assert body["detail"][0]["input"] == "a file (name.txt)", body
    assert "_max_size" not in resp.text
