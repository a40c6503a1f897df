"""Who is calling: bearer token or browser session cookie (with CSRF on writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from parley.auth import service, tokens
from parley.auth.models import User
from parley.common.errors import Forbidden, Unauthorized
from parley.deps import SessionDep
from parley.resources import Resources
from parley.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"

# The token endpoint also refreshes (grant_type=refresh_token, RFC 6749 §6).
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token", refreshUrl="/api/v1/auth/token", auto_error=False
)


def user_id_from_access_token(settings: Settings, token: str) -> int:
    """The user id an access token was issued to; Unauthorized if it is invalid or expired."""
    try:
        return tokens.decode_access_token(
            token, key=settings.signing_key(), issuer=settings.jwt_issuer
        )
    except tokens.InvalidTokenError as exc:
        raise Unauthorized("invalid or expired token") from exc


async def user_from_access_token(session: AsyncSession, settings: Settings, token: str) -> User:
    """The user an access token belongs to; Unauthorized if it is invalid or they are gone."""
    user = await session.get(User, user_id_from_access_token(settings, token))
    if user is None:
        raise Unauthorized("invalid or expired token")
    return user


@dataclass(frozen=True)
class Caller:
    """Who is calling, and the browser session they came by (None with a bearer token)."""

    user: User
    browser_session_id: int | None


async def caller_from_connection(
    conn: HTTPConnection, session: AsyncSession, *, token: str | None, check_csrf: bool
) -> Caller:
    """Authenticate a request or WebSocket by bearer token, else by session cookie."""
    settings: Settings = conn.app.state.resources.settings
    if token:
        return Caller(await user_from_access_token(session, settings, token), None)
    cookie = conn.cookies.get(settings.session_cookie_name)
    if cookie:
        browser_session = await service.find_browser_session(session, cookie)
        if browser_session is not None:
            if check_csrf and not service.csrf_matches(
                browser_session, conn.headers.get(CSRF_HEADER)
            ):
                raise Forbidden("missing or wrong X-CSRF-Token header")
            user = await session.get(User, browser_session.user_id)
            if user is not None:
                return Caller(user, browser_session.id)
    raise Unauthorized("not authenticated")


async def user_from_connection(
    conn: HTTPConnection, session: AsyncSession, *, token: str | None, check_csrf: bool
) -> User:
    """The user behind a request or WebSocket (see `caller_from_connection`)."""
    caller = await caller_from_connection(conn, session, token=token, check_csrf=check_csrf)
    return caller.user


async def get_current_user(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The authenticated caller."""
    return await user_from_connection(
        request, session, token=token, check_csrf=request.method not in SAFE_METHODS
    )


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_user_id(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> int:
    """The authenticated caller's id. A bearer token alone is enough: no database read.

    For routes whose every query is scoped by membership, so that a token outliving its user
    finds nothing (404) rather than anything of theirs.
    """
    resources: Resources = request.app.state.resources
    if token:
        return user_id_from_access_token(resources.settings, token)
    async with resources.db.session() as session:  # the session cookie is in the database
        user = await get_current_user(request, session, token)
    return user.id


CurrentUserId = Annotated[int, Depends(get_current_user_id)]
