"""POST /auth/register: the User answer, case-insensitive uniqueness and input rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.fixtures.users import PASSWORD

REGISTER = "/api/v1/auth/register"
USER_KEYS = {"id", "username", "displayName", "createdAt", "otpEnabled"}


async def test_register_answers_201_with_the_user(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        REGISTER, json={"username": "alice", "password": PASSWORD, "displayName": "Alice A."}
    )
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert set(user) == USER_KEYS
    assert user["username"] == "alice"
    assert user["displayName"] == "Alice A."
    assert user["otpEnabled"] is False
    assert datetime.fromisoformat(user["createdAt"]).utcoffset() is not None
    assert PASSWORD not in resp.text


async def test_display_name_defaults_to_the_username(client: httpx.AsyncClient) -> None:
    resp = await client.post(REGISTER, json={"username": "bob", "password": PASSWORD})
    assert resp.status_code == 201
    assert resp.json()["displayName"] == "bob"
    explicit_null = await client.post(
        REGISTER, json={"username": "bob2", "password": PASSWORD, "displayName": None}
    )
    assert explicit_null.status_code == 201
    assert explicit_null.json()["displayName"] == "bob2"


async def test_display_name_is_trimmed(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        REGISTER, json={"username": "trim", "password": PASSWORD, "displayName": "  Tr Im  "}
    )
    assert resp.status_code == 201
    assert resp.json()["displayName"] == "Tr Im"


async def test_usernames_are_stored_lower_case(client: httpx.AsyncClient) -> None:
    resp = await client.post(REGISTER, json={"username": "MiXeD", "password": PASSWORD})
    assert resp.status_code == 201
    assert resp.json()["username"] == "mixed"
    tok = await client.post("/api/v1/auth/token", data={"username": "mixed", "password": PASSWORD})
    assert tok.status_code == 200


@pytest.mark.parametrize("second", ["alice", "ALICE", "Alice", "aLiCe"])
async def test_taken_username_is_409_whatever_the_case(
    client: httpx.AsyncClient, second: str
) -> None:
    first = await client.post(REGISTER, json={"username": "alice", "password": PASSWORD})
    assert first.status_code == 201
    resp = await client.post(REGISTER, json={"username": second, "password": "another-pass"})
    assert resp.status_code == 409, resp.text
    assert isinstance(resp.json()["detail"], str)
    # The first account is untouched: its password still works, the second one does not.
    ok = await client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert ok.status_code == 200
    bad = await client.post(
        "/api/v1/auth/token", data={"username": "alice", "password": "another-pass"}
    )
    assert bad.status_code == 401


@pytest.mark.parametrize("username", ["abc", "a" * 32, "a.b", "a-b", "a_b", "123", "..."], ids=str)
async def test_valid_usernames(client: httpx.AsyncClient, username: str) -> None:
    resp = await client.post(REGISTER, json={"username": username, "password": PASSWORD})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "username",
    [
        "",
        "ab",
        "a" * 33,
        "a" * 65,
        "al ice",
        " alice",
        "alice ",
        "al!ce",
        "al@ce",
        "al/ce",
        "ålice",
        "алиса",
        "al\tice",
        "al\nice",
        "al\x00ice",
        "al+ce",
    ],
    ids=repr,
)
async def test_bad_username_shape_is_422(client: httpx.AsyncClient, username: str) -> None:
    resp = await client.post(REGISTER, json={"username": username, "password": PASSWORD})
    assert resp.status_code == 422, resp.text
    assert isinstance(resp.json()["detail"], list)


@pytest.mark.parametrize("password", ["", "1234567", "seven77"], ids=repr)
async def test_password_under_8_chars_is_422(client: httpx.AsyncClient, password: str) -> None:
    resp = await client.post(REGISTER, json={"username": "alice", "password": password})
    assert resp.status_code == 422, resp.text


async def test_password_of_exactly_8_chars_is_enough(client: httpx.AsyncClient) -> None:
    resp = await client.post(REGISTER, json={"username": "alice", "password": "12345678"})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "body",
    [
        {"password": PASSWORD},
        {"username": "alice"},
        {},
        {"username": 123, "password": PASSWORD},
        {"username": ["alice"], "password": PASSWORD},
        {"username": None, "password": PASSWORD},
        {"username": True, "password": PASSWORD},
        {"username": "alice", "password": 12345678},
        {"username": "alice", "password": None},
        {"username": "alice", "password": {"x": 1}},
        {"username": "alice", "password": PASSWORD, "displayName": 42},
        {"username": "alice", "password": PASSWORD, "displayName": ""},
        {"username": "alice", "password": PASSWORD, "displayName": "   "},
        {"username": "alice", "password": PASSWORD, "displayName": "\u200b\u3164"},
        {"username": "alice", "password": PASSWORD, "displayName": "x" * 65},
        {"username": "alice", "password": "x" * 257},
        {"username": "alice", "password": PASSWORD, "isAdmin": True},
        {"username": "alice", "password": PASSWORD, "display_name": "snake"},
        {"username": "alice", "password": PASSWORD, "id": 1},
    ],
    ids=repr,
)
async def test_wrong_types_missing_and_extra_fields_are_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    resp = await client.post(REGISTER, json=body)
    assert resp.status_code == 422, resp.text
    # Nothing was created.
    tok = await client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert tok.status_code == 401
