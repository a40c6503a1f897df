"""Two-factor login with TOTP: setup, enable, disable, and what login asks for afterwards."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
import pytest

from tests.auth.conftest import assert_unauthenticated
from tests.fixtures.otp import code_at, previous_code, wrong_code
from tests.fixtures.users import PASSWORD, Account

SETUP = "/api/v1/auth/otp/setup"
ENABLE = "/api/v1/auth/otp/enable"
DISABLE = "/api/v1/auth/otp/disable"
TOKEN = "/api/v1/auth/token"


async def setup(client: httpx.AsyncClient, who: Account) -> str:
    resp = await client.post(SETUP, headers=who.headers)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["secret"])


async def enable(client: httpx.AsyncClient, who: Account) -> str:
    secret = await setup(client, who)
    resp = await client.post(
        ENABLE, json={"code": await previous_code(secret)}, headers=who.headers
    )
    assert resp.status_code == 204, resp.text
    return secret


async def otp_enabled(client: httpx.AsyncClient, who: Account) -> bool:
    return bool((await client.get("/api/v1/users/me", headers=who.headers)).json()["otpEnabled"])


async def test_setup_returns_a_totp_secret_and_its_uri(
    client: httpx.AsyncClient, alice: Account
) -> None:
    resp = await client.post(SETUP, headers=alice.headers)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"secret", "otpauthUri"}
    uri = urlparse(body["otpauthUri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert "alice" in uri.path
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["Parley"]
    # The secret is base32 and pyotp agrees with the server about codes made from it.
    assert len(pyotp.TOTP(body["secret"]).now()) == 6
    # Setup alone does not turn two-factor on.
    assert await otp_enabled(client, alice) is False
    assert (await client.post(TOKEN, data={"username": "alice", "password": PASSWORD})).is_success


async def test_setup_needs_authentication(client: httpx.AsyncClient) -> None:
    assert_unauthenticated(await client.post(SETUP))
    assert_unauthenticated(await client.post(ENABLE, json={"code": "123456"}))
    assert_unauthenticated(await client.post(DISABLE, json={"code": "123456"}))


async def test_enable_with_the_right_code_turns_2fa_on(
    client: httpx.AsyncClient, alice: Account
) -> None:
    await enable(client, alice)
    assert await otp_enabled(client, alice) is True


async def test_enable_with_a_wrong_code_is_400_and_changes_nothing(
    client: httpx.AsyncClient, alice: Account
) -> None:
    secret = await setup(client, alice)
    # The right code in digits of another script, or superscripts: digits to str.isdigit().
    fullwidth = "".join(chr(0xFF10 + int(digit)) for digit in code_at(secret))
    others = (
        "\u0661\u0662\u0663\u0664\u0665\u0666",
        "\u00b9\u00b2\u00b3\u2074\u2075\u2076",
        fullwidth,
    )
    for bad in (wrong_code(secret), "abcdef", "12345", "1234567", "------", *others):
        resp = await client.post(ENABLE, json={"code": bad}, headers=alice.headers)
        assert resp.status_code == 400, (bad, resp.text)
    assert await otp_enabled(client, alice) is False


async def test_enable_before_setup_is_400(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.post(ENABLE, json={"code": "123456"}, headers=alice.headers)
    assert resp.status_code == 400


async def test_only_the_newest_setup_secret_counts(
    client: httpx.AsyncClient, alice: Account
) -> None:
    first = await setup(client, alice)
    second = await setup(client, alice)
    assert first != second
    if code_at(first) != code_at(second):  # equal only by a one-in-a-million chance
        resp = await client.post(ENABLE, json={"code": code_at(first)}, headers=alice.headers)
        assert resp.status_code == 400
    resp = await client.post(ENABLE, json={"code": code_at(second)}, headers=alice.headers)
    assert resp.status_code == 204


async def test_setup_or_enable_again_once_enabled_is_409(
    client: httpx.AsyncClient, alice: Account
) -> None:
    secret = await enable(client, alice)
    assert (await client.post(SETUP, headers=alice.headers)).status_code == 409
    again = await client.post(ENABLE, json={"code": code_at(secret)}, headers=alice.headers)
    assert again.status_code == 409
    # The enabled secret was not replaced.
    resp = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": code_at(secret)}
    )
    assert resp.status_code == 200


async def test_login_then_needs_the_code(client: httpx.AsyncClient, alice: Account) -> None:
    secret = await enable(client, alice)
    missing = await client.post(TOKEN, data={"username": "alice", "password": PASSWORD})
    assert_unauthenticated(missing)
    assert missing.json()["detail"] == "otp_required"
    wrong = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": wrong_code(secret)}
    )
    assert_unauthenticated(wrong)
    assert wrong.json()["detail"] == "invalid_otp"
    garbage = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": "not-a-code"}
    )
    assert garbage.json()["detail"] == "invalid_otp"
    arabic = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": "١٢٣٤٥٦"}
    )
    assert_unauthenticated(arabic)
    assert arabic.json()["detail"] == "invalid_otp"
    right = await client.post(
        TOKEN, data={"username": "alice", "password": PASSWORD, "otp": code_at(secret)}
    )
    assert right.status_code == 200, right.text
    assert set(right.json()) == {"access_token", "token_type", "expires_in", "refresh_token"}


async def test_a_wrong_password_does_not_reveal_that_2fa_is_on(
    client: httpx.AsyncClient, alice: Account
) -> None:
    await enable(client, alice)
    resp = await client.post(TOKEN, data={"username": "alice", "password": "wrong-password"})
    assert_unauthenticated(resp)
    unknown = await client.post(TOKEN, data={"username": "nobody", "password": "wrong-password"})
    assert resp.json() == unknown.json()


async def test_existing_tokens_keep_working_after_enabling(
    client: httpx.AsyncClient, alice: Account
) -> None:
    await enable(client, alice)
    assert (await client.get("/api/v1/users/me", headers=alice.headers)).status_code == 200
    resp = await client.post("/api/v1/auth/refresh", json={"refreshToken": alice.refresh_token})
    assert resp.status_code == 200


async def test_the_secret_is_never_shown_again(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    secret = await enable(client, alice)
    chat = await client.post(
        "/api/v1/chats", json={"type": "direct", "memberIds": [alice.id]}, headers=bob.headers
    )
    answers = [
        await client.get("/api/v1/users/me", headers=alice.headers),
        await client.get("/api/v1/users", params={"query": "al"}, headers=bob.headers),
        await client.get("/api/v1/users", params={"query": "al"}, headers=alice.headers),
        chat,
        await client.get(f"/api/v1/chats/{chat.json()['id']}", headers=alice.headers),
        await client.get("/api/v1/chats", headers=alice.headers),
        await client.post(
            TOKEN, data={"username": "alice", "password": PASSWORD, "otp": code_at(secret)}
        ),
        await client.get("/openapi.json"),
    ]
    for resp in answers:
        assert resp.status_code in (200, 201), resp.text
        assert secret not in resp.text
        assert "otpSecret" not in resp.text
        assert "otp_secret" not in resp.text
    me = answers[0].json()
    assert set(me) == {"id", "username", "displayName", "createdAt", "otpEnabled"}


async def test_disable_needs_a_right_code(client: httpx.AsyncClient, alice: Account) -> None:
    secret = await enable(client, alice)
    bad = await client.post(DISABLE, json={"code": wrong_code(secret)}, headers=alice.headers)
    assert bad.status_code == 400
    assert await otp_enabled(client, alice) is True
    ok = await client.post(DISABLE, json={"code": code_at(secret)}, headers=alice.headers)
    assert ok.status_code == 204
    assert await otp_enabled(client, alice) is False
    plain = await client.post(TOKEN, data={"username": "alice", "password": PASSWORD})
    assert plain.status_code == 200


async def test_disable_when_not_enabled_is_400(client: httpx.AsyncClient, alice: Account) -> None:
    resp = await client.post(DISABLE, json={"code": "123456"}, headers=alice.headers)
    assert resp.status_code == 400
    secret = await setup(client, alice)  # pending, not enabled
    resp = await client.post(DISABLE, json={"code": code_at(secret)}, headers=alice.headers)
    assert resp.status_code == 400


async def test_after_disabling_setup_gives_a_new_secret(
    client: httpx.AsyncClient, alice: Account
) -> None:
    old = await enable(client, alice)
    await client.post(DISABLE, json={"code": code_at(old)}, headers=alice.headers)
    new = await setup(client, alice)
    assert new != old


@pytest.mark.parametrize("route", [ENABLE, DISABLE])
@pytest.mark.parametrize(
    "body",
    [{}, {"code": ""}, {"code": None}, {"code": 123456}, {"code": "1" * 17}, {"code": "1", "x": 1}],
    ids=repr,
)
async def test_bad_code_bodies_are_422(
    client: httpx.AsyncClient, alice: Account, route: str, body: dict[str, object]
) -> None:
    resp = await client.post(route, json=body, headers=alice.headers)
    assert resp.status_code == 422, resp.text
