"""A password is the same password whichever Unicode form the keyboard typed it in."""

from __future__ import annotations

import unicodedata

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import update

from parley.auth.models import User
from parley.db.engine import Database

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
# "é" and "ö" as one code point each (NFC), or as a letter and a combining mark (NFD).
COMPOSED = unicodedata.normalize("NFC", "Crème brûlée à Köln 42")
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)


async def _token(client: httpx.AsyncClient, username: str, password: str) -> int:
    resp = await client.post(TOKEN, data={"username": username, "password": password})
    return resp.status_code


@pytest.mark.parametrize(
    ("registered", "typed"),
    [(COMPOSED, DECOMPOSED), (DECOMPOSED, COMPOSED), (DECOMPOSED, DECOMPOSED)],
    ids=["nfc-then-nfd", "nfd-then-nfc", "nfd-both"],
)
async def test_either_form_signs_in(client: httpx.AsyncClient, registered: str, typed: str) -> None:
    assert COMPOSED != DECOMPOSED
    resp = await client.post(REGISTER, json={"username": "zoe", "password": registered})
    assert resp.status_code == 201, resp.text
    assert await _token(client, "zoe", typed) == 200
    assert await _token(client, "zoe", typed.replace("42", "43")) == 401


async def test_a_hash_made_before_normalization_still_signs_in(
    client: httpx.AsyncClient, db: Database
) -> None:
    # An account whose hash was made of the password as typed, in NFD, by an older release.
    resp = await client.post(REGISTER, json={"username": "old", "password": "placeholder-1"})
    assert resp.status_code == 201, resp.text
    async with db.session() as session:
        await session.execute(
            update(User)
            .where(User.username == "old")
            .values(password_hash=PasswordHasher().hash(DECOMPOSED))
        )
        await session.commit()
    assert await _token(client, "old", DECOMPOSED) == 200
    assert await _token(client, "old", "placeholder-1") == 401
