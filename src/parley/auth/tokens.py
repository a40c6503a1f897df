"""Access tokens (PyJWT) and opaque secrets stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from parley.common.ids import MAX_ID
from parley.db.base import utcnow

ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or not an access token."""


@dataclass(frozen=True)
class AccessToken:
    """A signed access token and how long it lives."""

    token: str
    expires_in: int


def issue_access_token(
    user_id: int,
    *,
    key: str,
    issuer: str,
    ttl_seconds: int,
    issued_at: datetime | None = None,
) -> AccessToken:
    """A short-lived JWT whose subject is the user's id, issued now or at `issued_at`.

    The token is a function of its arguments (and of the second it was issued in), so the
    one issued at a given time can be issued again, byte for byte. `expires_in` counts from
    now.
    """
    now = utcnow()
    issued = (issued_at or now).replace(microsecond=0)
    expires = issued + timedelta(seconds=ttl_seconds)
    claims = {"sub": str(user_id), "iss": issuer, "iat": issued, "exp": expires, "typ": "access"}
    expires_in = max(0, min(ttl_seconds, math.ceil((expires - now).total_seconds())))
    return AccessToken(jwt.encode(claims, key, algorithm=ALGORITHM), expires_in)


# Tokens verified lately, with their user id and expiry: checking an HS256 signature and the
# claims costs ~60 us with PyJWT, and a client sends the same token with every request until
# it expires. Only tokens that passed the full check are kept; expiry is checked on each use.
VERIFIED_CACHE_SIZE = 4096
_verified: OrderedDict[tuple[str, str, str], tuple[int, float]] = OrderedDict()


def decode_access_token(token: str, *, key: str, issuer: str) -> int:
    """The user id in a valid access token; raises InvalidTokenError otherwise."""
    cache_key = (token, key, issuer)
    known = _verified.get(cache_key)
    if known is not None and time.time() < known[1]:
        _verified.move_to_end(cache_key)
        return known[0]
    user_id, expires_at = _verify(token, key=key, issuer=issuer)
    _verified[cache_key] = (user_id, expires_at)
    if len(_verified) > VERIFIED_CACHE_SIZE:
        _verified.popitem(last=False)
    return user_id


def _verify(token: str, *, key: str, issuer: str) -> tuple[int, float]:
    """The user id and expiry time of a valid access token (the full check)."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "iss", "sub"]},
        )
        if claims.get("typ") != "access":
            raise InvalidTokenError("not an access token")
        user_id = int(claims["sub"])
        # Only the form the server writes: int() also takes spaces, signs, zeros and
        # other scripts' digits, and one user must not have many subjects.
        if not 1 <= user_id <= MAX_ID or claims["sub"] != str(user_id):
            raise InvalidTokenError("subject is not a user id")
        return user_id, float(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidTokenError(str(exc)) from exc


def new_secret() -> str:
    """A fresh, URL-safe random secret (refresh tokens, session and CSRF tokens)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest under which a random secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def derive_secret(key: str, purpose: str, secret: str) -> str:
    """A secret computed from another one under the signing key: HMAC-SHA256, URL-safe.

    Only whoever holds both `secret` and the key can compute it, so it need not be stored:
    the database keeps hashes alone. `purpose` separates the uses (one derived secret is
    never another's).
    """
    mac = hmac.new(key.encode(), f"parley:{purpose}\x00{secret}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
