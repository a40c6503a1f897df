"""Account rules: registration, credentials, token rotation, two-factor, browser sessions."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import otp, passwords, tokens
from parley.auth.models import BrowserSession, RefreshToken, User
from parley.auth.schemas import USERNAME_RE
from parley.common.errors import BadRequest, Conflict, Unauthorized
from parley.db.base import utcnow
from parley.settings import Settings

BAD_CREDENTIALS = "incorrect username or password"
USERNAME_PREFIX_RE = re.compile(r"[a-z0-9_.-]*")


@dataclass(frozen=True)
class TokenPair:
    """An access token and the refresh token that can replace it."""

    access_token: str
    expires_in: int
    refresh_token: str


async def register(
    session: AsyncSession, *, username: str, password: str, display_name: str | None
) -> User:
    """Create an account; Conflict when the (case-insensitive) username is taken."""
    user = User(
        username=username.lower(),
        display_name=display_name or username,
        password_hash=passwords.hash_password(password),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("username is taken") from exc
    return user


async def authenticate(
    session: AsyncSession, *, username: str, password: str, otp_code: str | None
) -> User:
    """The user these credentials prove; Unauthorized with one message for any bad pair."""
    name = username.lower()
    # A name no account can have is not looked up: PostgreSQL refuses some (NUL) outright.
    possible = USERNAME_RE.fullmatch(name) is not None
    user = await session.scalar(select(User).where(User.username == name)) if possible else None
    ok = passwords.verify_password(password, user.password_hash if user else None)
    if user is None or not ok:
        raise Unauthorized(BAD_CREDENTIALS)
    if user.otp_enabled:
        if not otp_code:
            raise Unauthorized("otp_required")
        if not user.otp_secret or not otp.verify_otp(user.otp_secret, otp_code):
            raise Unauthorized("invalid_otp")
    return user


async def issue_tokens(
    session: AsyncSession, user_id: int, settings: Settings, *, family: str | None = None
) -> TokenPair:
    """A new access token and refresh token; the refresh token is stored hashed."""
    refresh = tokens.new_secret()
    session.add(
        RefreshToken(
            user_id=user_id,
            token_hash=tokens.hash_secret(refresh),
            family=family or uuid.uuid4().hex,
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.commit()
    access = tokens.issue_access_token(
        user_id,
        key=settings.signing_key(),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return TokenPair(access.token, access.expires_in, refresh)


async def rotate_refresh_token(
    session: AsyncSession, refresh_token: str, settings: Settings
) -> TokenPair:
    """Trade a live refresh token for a new pair. Reusing a spent one revokes its whole family."""
    now = utcnow()
    # Marking the token used is a conditional UPDATE, so two concurrent refreshes with the same
    # token cannot both succeed.
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == tokens.hash_secret(refresh_token),
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.user_id, RefreshToken.family)
    )
    row = result.first()
    if row is None:
        await _revoke_family_of(session, refresh_token)
        raise Unauthorized("invalid refresh token")
    return await issue_tokens(session, row.user_id, settings, family=row.family)


async def _revoke_family_of(session: AsyncSession, refresh_token: str) -> None:
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == tokens.hash_secret(refresh_token))
    )
    if stored is not None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == stored.family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    await session.commit()


async def revoke_refresh_token(session: AsyncSession, refresh_token: str) -> None:
    """Kill a refresh token (logout); unknown tokens are ignored so logout is idempotent."""
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == tokens.hash_secret(refresh_token),
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    await session.commit()


async def begin_otp_setup(session: AsyncSession, user: User) -> tuple[str, str]:
    """A new pending TOTP secret and its otpauth URI; Conflict if 2FA is already on."""
    if user.otp_enabled:
        raise Conflict("two-factor authentication is already enabled")
    user.otp_secret = otp.new_otp_secret()
    await session.commit()
    return user.otp_secret, otp.provisioning_uri(user.otp_secret, user.username)


async def enable_otp(session: AsyncSession, user: User, code: str) -> None:
    """Turn 2FA on once the user proves their authenticator has the pending secret."""
    if user.otp_enabled:
        raise Conflict("two-factor authentication is already enabled")
    if not user.otp_secret:
        raise BadRequest("call /auth/otp/setup first")
    if not otp.verify_otp(user.otp_secret, code):
        raise BadRequest("wrong code")
    user.otp_enabled = True
    await session.commit()


async def disable_otp(session: AsyncSession, user: User, code: str) -> None:
    """Turn 2FA off; needs a current code."""
    if not user.otp_enabled or not user.otp_secret:
        raise BadRequest("two-factor authentication is not enabled")
    if not otp.verify_otp(user.otp_secret, code):
        raise BadRequest("wrong code")
    user.otp_enabled = False
    user.otp_secret = None
    await session.commit()


async def start_browser_session(
    session: AsyncSession, user_id: int, settings: Settings
) -> tuple[str, str]:
    """A new cookie session: returns (session token, CSRF token); both stored hashed."""
    token, csrf = tokens.new_secret(), tokens.new_secret()
    session.add(
        BrowserSession(
            user_id=user_id,
            token_hash=tokens.hash_secret(token),
            csrf_hash=tokens.hash_secret(csrf),
            expires_at=utcnow() + timedelta(seconds=settings.session_ttl_seconds),
        )
    )
    await session.commit()
    return token, csrf


async def find_browser_session(session: AsyncSession, token: str) -> BrowserSession | None:
    """The live session for a cookie value, if any."""
    found = await session.scalar(
        select(BrowserSession).where(BrowserSession.token_hash == tokens.hash_secret(token))
    )
    if found is None or found.expires_at <= utcnow():
        return None
    return found


def csrf_matches(browser_session: BrowserSession, csrf_token: str | None) -> bool:
    """True when the header carries this session's CSRF token."""
    if not csrf_token:
        return False
    return secrets.compare_digest(browser_session.csrf_hash, tokens.hash_secret(csrf_token))


async def end_browser_session(session: AsyncSession, token: str) -> None:
    """Delete the session behind a cookie value, if it exists."""
    found = await find_browser_session(session, token)
    if found is not None:
        await session.delete(found)
        await session.commit()


async def search_users(
    session: AsyncSession, *, prefix: str, after_username: str | None, limit: int
) -> list[User]:
    """Users whose username starts with `prefix`, in username order, after a cursor."""
    if not USERNAME_PREFIX_RE.fullmatch(prefix.lower()):
        return []  # no username has such a character (and PostgreSQL refuses some, like NUL)
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = select(User).where(User.username.like(escaped + "%", escape="\\"))
    if after_username is not None:
        stmt = stmt.where(User.username > after_username)
    rows = await session.scalars(stmt.order_by(User.username).limit(limit))
    return list(rows)
