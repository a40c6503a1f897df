"""Account rules: registration, credentials, token rotation, two-factor, browser sessions."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import otp, passwords, tokens
from parley.auth.models import BrowserSession, RefreshToken, User
from parley.auth.schemas import USERNAME_RE
from parley.common.errors import BadRequest, Conflict, DomainError, Unauthorized
from parley.db.base import utcnow
from parley.settings import Settings

BAD_CREDENTIALS = "incorrect username or password"
INVALID_REFRESH_TOKEN = "invalid refresh token"  # noqa: S105 - a message
OTP_REQUIRED = "otp_required"
INVALID_OTP = "invalid_otp"
WRONG_CODE = "wrong code"
USERNAME_PREFIX_RE = re.compile(r"[a-z0-9_.-]*")
# Purposes of the secrets derived from another one (tokens.derive_secret).
REFRESH_SUCCESSOR = "refresh-successor"
SESSION_CSRF = "session-csrf"


class OtpRequired(Unauthorized):
    """The password was right, but two-factor is on and no code came (401 `otp_required`)."""

    def __init__(self) -> None:
        super().__init__(OTP_REQUIRED)


class WrongOtp(DomainError):
    """A one-time code that is wrong, or was accepted before: counts as a failed attempt."""


class InvalidOtp(WrongOtp, Unauthorized):
    """A wrong or replayed code at login (401 `invalid_otp`)."""


class WrongOtpCode(WrongOtp, BadRequest):
    """A wrong or replayed code when turning two-factor on or off (400)."""


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
        password_hash=await passwords.hash_password_async(password),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("username is taken") from exc
    return user


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User:
    """The user these credentials prove; Unauthorized with one message for any bad pair.

    The second factor is the caller's next step (`check_login_otp`) when the user has one.
    """
    name = username.lower()
    # A name no account can have is not looked up: PostgreSQL refuses some (NUL) outright.
    possible = USERNAME_RE.fullmatch(name) is not None
    user = await session.scalar(select(User).where(User.username == name)) if possible else None
    ok = await passwords.verify_password_async(password, user.password_hash if user else None)
    if user is None or not ok:
        raise Unauthorized(BAD_CREDENTIALS)
    return user


def require_otp_code(user: User, otp_code: str | None) -> str | None:
    """The code to check for this user's login: None without two-factor; Unauthorized
    `otp_required` when two-factor is on and no code came."""
    if not user.otp_enabled:
        return None
    if not otp_code:
        raise OtpRequired()
    return otp_code


async def check_login_otp(session: AsyncSession, user: User, otp_code: str) -> None:
    """Accept a login's code once (`InvalidOtp` when wrong or replayed); the caller commits."""
    if not await _accept_otp(session, user, otp_code):
        raise InvalidOtp(INVALID_OTP)


async def _accept_otp(session: AsyncSession, user: User, code: str) -> bool:
    """True when `code` is a current code of the user's secret whose time step is newer than
    any accepted before; that step is then recorded (in the caller's transaction).

    One conditional UPDATE: of two requests with the same code, only one can move the step.
    """
    step = otp.matching_step(user.otp_secret, code) if user.otp_secret else None
    if step is None:
        return False
    accepted = await session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.otp_last_step.is_(None), User.otp_last_step < step),
        )
        .values(otp_last_step=step)
        .returning(User.id)
    )
    return accepted.first() is not None


async def issue_tokens(
    session: AsyncSession,
    user_id: int,
    settings: Settings,
    *,
    family: str | None = None,
    refresh_token: str | None = None,
    issued_at: datetime | None = None,
) -> TokenPair:
    """A new access token (issued now, or at `issued_at`) and refresh token (random unless
    given); the refresh token is stored hashed."""
    refresh = refresh_token or tokens.new_secret()
    session.add(
        RefreshToken(
            user_id=user_id,
            token_hash=tokens.hash_secret(refresh),
            family=family or uuid.uuid4().hex,
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.commit()
    return _pair(user_id, refresh, settings, issued_at)


def _pair(
    user_id: int, refresh_token: str, settings: Settings, issued_at: datetime | None = None
) -> TokenPair:
    access = tokens.issue_access_token(
        user_id,
        key=settings.signing_key(),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.access_token_ttl_seconds,
        issued_at=issued_at,
    )
    return TokenPair(access.token, access.expires_in, refresh_token)


async def rotate_refresh_token(
    session: AsyncSession, refresh_token: str, settings: Settings
) -> TokenPair:
    """Trade a live refresh token for a new pair; the old one dies.

    Presented again within `refresh_reuse_interval_seconds` of its rotation (two tabs
    refreshing at once), while its successor is still unused and unrevoked, it gets that
    same pair again: the access token is issued at the rotation's time, so it is issued
    again identically. Any other reuse of a spent token is taken as theft and revokes its
    whole family.

    The successor is not random but derived from the old token under the signing key
    (`tokens.derive_secret`): the server can hand the same one out twice without keeping
    it, and the database holds only hashes, as for every token. Whoever could compute it
    already holds the old token and the key.
    """
    now = utcnow()
    successor = tokens.derive_secret(settings.signing_key(), REFRESH_SUCCESSOR, refresh_token)
    # Marking the token used is a conditional UPDATE, so two concurrent refreshes with the same
    # token cannot both rotate it: the other one finds it used, and takes the grace path.
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
    if row is not None:
        return await issue_tokens(
            session,
            row.user_id,
            settings,
            family=row.family,
            refresh_token=successor,
            issued_at=now,
        )
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == tokens.hash_secret(refresh_token))
    )
    if stored is None:
        raise Unauthorized(INVALID_REFRESH_TOKEN)
    if _within_reuse_interval(stored.used_at, stored.revoked_at, now, settings):
        live_successor = await session.scalar(
            select(RefreshToken.user_id).where(
                RefreshToken.token_hash == tokens.hash_secret(successor),
                RefreshToken.family == stored.family,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
        )
        if live_successor is not None:
            # The rotation's access token again, unless it has expired since.
            access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
            fresh = stored.used_at is None or now - stored.used_at >= access_ttl
            return _pair(live_successor, successor, settings, None if fresh else stored.used_at)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == stored.family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.commit()
    raise Unauthorized(INVALID_REFRESH_TOKEN)


def _within_reuse_interval(
    used_at: datetime | None, revoked_at: datetime | None, now: datetime, settings: Settings
) -> bool:
    if used_at is None or revoked_at is not None:
        return False
    return now - used_at <= timedelta(seconds=settings.refresh_reuse_interval_seconds)


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
    user.otp_last_step = None  # the steps counted codes of the old secret
    await session.commit()
    return user.otp_secret, otp.provisioning_uri(user.otp_secret, user.username)


async def enable_otp(session: AsyncSession, user: User, code: str) -> None:
    """Turn 2FA on once the user proves their authenticator has the pending secret (the
    code counts as used: it is not accepted again)."""
    if user.otp_enabled:
        raise Conflict("two-factor authentication is already enabled")
    if not user.otp_secret:
        raise BadRequest("call /auth/otp/setup first")
    if not await _accept_otp(session, user, code):
        raise WrongOtpCode(WRONG_CODE)
    user.otp_enabled = True
    await session.commit()


async def disable_otp(session: AsyncSession, user: User, code: str) -> None:
    """Turn 2FA off; needs a current code not accepted before."""
    if not user.otp_enabled or not user.otp_secret:
        raise BadRequest("two-factor authentication is not enabled")
    if not await _accept_otp(session, user, code):
        raise WrongOtpCode(WRONG_CODE)
    user.otp_enabled = False
    user.otp_secret = None
    await session.commit()


async def start_browser_session(
    session: AsyncSession, user_id: int, settings: Settings
) -> tuple[str, str]:
    """A new cookie session: returns (session token, CSRF token); both stored hashed."""
    token = tokens.new_secret()
    csrf = csrf_token_for(token, settings)
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


def csrf_token_for(session_token: str, settings: Settings) -> str:
    """The CSRF token of the browser session behind a cookie value.

    Derived from the cookie value under the signing key (an HMAC), so that it can be given
    back to a reloaded page without being stored: the database keeps only its hash. A page
    on another origin can neither read the HttpOnly cookie nor compute this from it.
    """
    return tokens.derive_secret(settings.signing_key(), SESSION_CSRF, session_token)


async def resume_browser_session(
    session: AsyncSession, token: str, settings: Settings
) -> tuple[User, str] | None:
    """The user and CSRF token of the live session behind a cookie value, if any."""
    found = await find_browser_session(session, token)
    if found is None:
        return None
    user = await session.get(User, found.user_id)
    if user is None:
        return None
    csrf = csrf_token_for(token, settings)
    if not csrf_matches(found, csrf):
        # A session started before CSRF tokens were derived had a random one, which is not
        # kept: it gets the derived one from now on.
        found.csrf_hash = tokens.hash_secret(csrf)
        await session.commit()
    return user, csrf


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


async def end_browser_session(session: AsyncSession, token: str) -> BrowserSession | None:
    """Delete the session behind a cookie value, if it exists; the session it ended."""
    found = await find_browser_session(session, token)
    if found is not None:
        await session.delete(found)
        await session.commit()
    return found


# Browser sessions asked about in one statement at most: its IN list stays under the 999
# parameters older SQLite builds allow.
_SESSIONS_PER_QUERY = 500


async def living_browser_sessions(
    session: AsyncSession, sessions: Collection[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Those of `sessions`, (user id, browser session id) pairs, that still exist and have
    not expired."""
    ids = sorted({session_id for _, session_id in sessions})
    now = utcnow()
    found: set[tuple[int, int]] = set()
    for start in range(0, len(ids), _SESSIONS_PER_QUERY):
        rows = await session.execute(
            select(BrowserSession.user_id, BrowserSession.id).where(
                BrowserSession.id.in_(ids[start : start + _SESSIONS_PER_QUERY]),
                BrowserSession.expires_at > now,
            )
        )
        found.update((user_id, session_id) for user_id, session_id in rows)
    return found & set(sessions)


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
