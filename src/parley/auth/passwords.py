"""Password hashing with Argon2id, and a dummy check for unknown users.

Hashing costs tens of milliseconds of CPU on purpose: the async functions run it on a
thread, so that a login does not stall every socket of the process meanwhile. The costs
come from settings (`PARLEY_PASSWORD_HASH_*`), set once by `configure` at app start.

A password is hashed in Unicode normalization form C (as RFC 8265's OpaqueString profile
asks): "é" typed as one code point on one keyboard and as "e" and a combining accent on
another is the same password.
"""

from __future__ import annotations

import asyncio
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from parley.settings import Settings

_configured: PasswordHasher | None = None


def configure(settings: Settings) -> None:
    """Hash new passwords with the Argon2 costs of `settings` (one process, one set of costs)."""
    global _configured
    _configured = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_cost,
        parallelism=settings.password_hash_parallelism,
    )
    _dummy_hash.cache_clear()


def _hasher() -> PasswordHasher:
    return _configured if _configured is not None else _default_hasher()


@lru_cache
def _default_hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash("parley-dummy-password-for-timing")


def hash_password(password: str) -> str:
    """An Argon2id hash of `password` (normalized), salted."""
    return _hasher().hash(unicodedata.normalize("NFC", password))


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches. With no hash (unknown user) it still spends the same time.

    A hash made before passwords were normalized holds the password as it was typed: a
    password that normalization changes is tried as typed too.
    """
    normalized = unicodedata.normalize("NFC", password)
    if _matches(normalized, password_hash):
        return True
    return normalized != password and _matches(password, password_hash)


def _matches(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """`hash_password` off the event loop."""
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, password_hash: str | None) -> bool:
    """`verify_password` off the event loop."""
    return await asyncio.to_thread(verify_password, password, password_hash)
