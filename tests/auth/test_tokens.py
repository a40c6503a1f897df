"""The password grant, refresh-token rotation with reuse detection, logout, and bearer checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests.auth.conftest import assert_unauthenticated, bearer
from tests.fixtures.apps import TEST_SECRET, ClientWith
from tests.fixtures.users import PASSWORD, Account, register

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


async def me_status(client: httpx.AsyncClient, access_token: str) -> int:
    return (await client.get(ME, headers=bearer(access_token))).status_code


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refreshToken": refresh_token})


# --- POST /auth/token -------------------------------------------------------------------------


async def test_password_grant_answers_rfc6749_keys(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    resp = await client.post(TOKEN, data={"username": "alice", "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] != body["refresh_token"]
    me = await client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"


async def test_username_in_any_case_logs_in(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    resp = await client.post(TOKEN, data={"username": "ALICE", "password": PASSWORD})
    assert resp.status_code == 200


async def test_unknown_user_and_wrong_password_answer_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "alice")
    wrong_password = await client.post(TOKEN, data={"username": "alice", "password": "nope-nope"})
    unknown_user = await client.post(TOKEN, data={"username": "nobody", "password": PASSWORD})
    for resp in (wrong_password, unknown_user):
        assert_unauthenticated(resp)
        assert set(resp.json()) == {"detail", "error", "error_description"}
        assert resp.json()["error"] == "invalid_grant"
    assert wrong_password.json() == unknown_user.json()


@pytest.mark.parametrize(
    "username", ["no body", "x" * 64, "al\x00ice", "ålice", "a%b", "a_"], ids=repr
)
async def test_usernames_that_cannot_exist_are_bad_credentials(
    client: httpx.AsyncClient, username: str
) -> None:
    await register(client, "alice")
    resp = await client.post(TOKEN, data={"username": username, "password": PASSWORD})
    assert_unauthenticated(resp)


@pytest.mark.parametrize(
    "data",
    [
        {"username": "alice"},
        {"password": PASSWORD},
        {},
        {"username": "", "password": PASSWORD},
        {"username": "alice", "password": ""},
        {"username": "x" * 65, "password": PASSWORD},
        {"username": "alice", "password": "x" * 257},
        {"username": "alice", "password": PASSWORD, "otp": "1" * 17},
    ],
    ids=repr,
)
async def test_missing_or_oversized_form_fields_are_422(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    await register(client, "alice")
    resp = await client.post(TOKEN, data=data)
    assert resp.status_code == 422, resp.text


async def test_json_body_instead_of_the_form_is_422(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    resp = await client.post(TOKEN, json={"username": "alice", "password": PASSWORD})
    assert resp.status_code == 422


async def test_an_otp_field_is_ignored_without_two_factor(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    resp = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": "000000"}
    )
    assert resp.status_code == 200


# --- POST /auth/refresh -----------------------------------------------------------------------


async def test_refresh_gives_a_new_working_pair(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await refresh(client, alice.refresh_token)
    assert resp.status_code == 200, resp.text
    pair = resp.json()
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert pair["refresh_token"] != alice.refresh_token
    assert await me_status(client, pair["access_token"]) == 200
    again = await refresh(client, pair["refresh_token"])
    assert again.status_code == 200
    assert await me_status(client, again.json()["access_token"]) == 200


@pytest.fixture
async def strict(client_with: ClientWith) -> httpx.AsyncClient:
    """An app without the reuse interval: a spent refresh token is dead at once."""
    return await client_with(refresh_reuse_interval_seconds=0)


async def test_a_spent_refresh_token_is_dead(strict: httpx.AsyncClient) -> None:
    alice = await register(strict, "alice")
    assert (await refresh(strict, alice.refresh_token)).status_code == 200
    assert_unauthenticated(await refresh(strict, alice.refresh_token))


async def test_reusing_a_spent_token_revokes_the_whole_family(
    client: httpx.AsyncClient, alice: Account
) -> None:
    second = (await refresh(client, alice.refresh_token)).json()
    third = (await refresh(client, second["refresh_token"])).json()
    # Someone replays the first (stolen) token: it fails, and the live descendant dies too.
    assert_unauthenticated(await refresh(client, alice.refresh_token))
    assert_unauthenticated(await refresh(client, third["refresh_token"]))
    assert_unauthenticated(await refresh(client, second["refresh_token"]))


async def test_reuse_in_one_family_leaves_other_logins_alone(strict: httpx.AsyncClient) -> None:
    alice = await register(strict, "alice")
    other_login = await strict.post(TOKEN, data={"username": "alice", "password": PASSWORD})
    other_refresh = other_login.json()["refresh_token"]
    await refresh(strict, alice.refresh_token)
    assert_unauthenticated(await refresh(strict, alice.refresh_token))
    assert (await refresh(strict, other_refresh)).status_code == 200


@pytest.mark.parametrize(
    "token", ["garbage", "x" * 512, "a.b.c"], ids=["garbage", "long", "jwt-shaped"]
)
async def test_unknown_refresh_tokens_are_401(client: httpx.AsyncClient, token: str) -> None:
    assert_unauthenticated(await refresh(client, token))


async def test_an_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, alice: Account
) -> None:
    assert_unauthenticated(await refresh(client, alice.access_token))


@pytest.mark.parametrize("route", [REFRESH, LOGOUT])
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"refreshToken": ""},
        {"refreshToken": None},
        {"refreshToken": 123},
        {"refreshToken": ["x"]},
        {"refreshToken": "x" * 513},
        {"refresh_token": "snake-case"},
        {"refreshToken": "x", "extra": 1},
    ],
    ids=repr,
)
async def test_bad_refresh_bodies_are_422(
    client: httpx.AsyncClient, route: str, body: dict[str, Any]
) -> None:
    resp = await client.post(route, json=body)
    assert resp.status_code == 422, resp.text


# --- POST /auth/logout ------------------------------------------------------------------------


async def test_logout_kills_the_refresh_token(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.post(LOGOUT, json={"refreshToken": alice.refresh_token})
    assert resp.status_code == 204
    assert resp.content == b""
    assert_unauthenticated(await refresh(client, alice.refresh_token))


async def test_logout_is_idempotent_and_ignores_unknown_tokens(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for token in (alice.refresh_token, alice.refresh_token, "never-issued"):
        assert (await client.post(LOGOUT, json={"refreshToken": token})).status_code == 204


async def test_logout_of_one_login_keeps_the_others(
    client: httpx.AsyncClient, alice: Account
) -> None:
    other = (await client.post(TOKEN, data={"username": "alice", "password": PASSWORD})).json()
    await client.post(LOGOUT, json={"refreshToken": alice.refresh_token})
    assert (await refresh(client, other["refresh_token"])).status_code == 200


# --- Bearer access tokens ---------------------------------------------------------------------


def access_token(sub: Any, *, key: str = TEST_SECRET, **overrides: Any) -> str:
    """An access token like the server's, with any claim changed (None removes it)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "iss": "parley",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "typ": "access",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="HS256")


async def test_a_token_made_like_the_servers_works(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """The control for the tests below: only the one claim they change makes them fail."""
    assert await me_status(client, access_token(str(alice.id))) == 200


async def test_expired_access_token_is_401(client: httpx.AsyncClient, alice: Account) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = access_token(str(alice.id), iat=past - timedelta(minutes=15), exp=past)
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


OTHER_KEY = "another-secret-key-that-is-long-enough-000"


@pytest.mark.parametrize(
    ("sub", "key", "overrides"),
    [
        pytest.param("SELF", OTHER_KEY, {}, id="other key"),
        pytest.param("SELF", TEST_SECRET, {"iss": "someone-else"}, id="wrong issuer"),
        pytest.param("SELF", TEST_SECRET, {"iss": None}, id="no issuer"),
        pytest.param("SELF", TEST_SECRET, {"exp": None}, id="no expiry"),
        pytest.param("SELF", TEST_SECRET, {"typ": "refresh"}, id="not an access token"),
        pytest.param("SELF", TEST_SECRET, {"typ": None}, id="no type"),
        pytest.param(None, TEST_SECRET, {}, id="no subject"),
        pytest.param("alice", TEST_SECRET, {}, id="non-numeric subject"),
        pytest.param("987654", TEST_SECRET, {}, id="unknown user"),
        pytest.param(str(2**70), TEST_SECRET, {}, id="subject out of range"),
        pytest.param("-1", TEST_SECRET, {}, id="negative subject"),
        pytest.param("0", TEST_SECRET, {}, id="zero subject"),
        pytest.param(" SELF ", TEST_SECRET, {}, id="subject with spaces"),
        pytest.param("+SELF", TEST_SECRET, {}, id="subject with a sign"),
        pytest.param("0SELF", TEST_SECRET, {}, id="subject with a leading zero"),
        pytest.param("ARABIC", TEST_SECRET, {}, id="subject in other digits"),
    ],
)
async def test_forged_or_foreign_tokens_are_401(
    client: httpx.AsyncClient,
    alice: Account,
    sub: str | None,
    key: str,
    overrides: dict[str, Any],
) -> None:
    if sub == "ARABIC":
        sub = "".join(chr(0x0660 + int(digit)) for digit in str(alice.id))
    elif sub is not None:
        sub = sub.replace("SELF", str(alice.id))
    token = access_token(sub, key=key, **overrides)
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_unsigned_token_is_401(client: httpx.AsyncClient, alice: Account) -> None:
    claims = {"sub": str(alice.id), "iss": "parley", "typ": "access", "exp": 4102444800}
    token = jwt.encode(claims, key=None, algorithm="none")
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_tampered_payload_is_401(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    header, _, signature = alice.access_token.split(".")
    _, bob_payload, _ = bob.access_token.split(".")
    assert_unauthenticated(
        await client.get(ME, headers=bearer(f"{header}.{bob_payload}.{signature}"))
    )


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Bearer garbage", "Bearer a.b.c", "Basic YWxpY2U6cHc=", "garbage"],
    ids=repr,
)
async def test_missing_or_malformed_authorization_is_401(
    client: httpx.AsyncClient, alice: Account, authorization: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    assert_unauthenticated(await client.get(ME, headers=headers))


async def test_a_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, alice: Account
) -> None:
    assert_unauthenticated(await client.get(ME, headers=bearer(alice.refresh_token)))
