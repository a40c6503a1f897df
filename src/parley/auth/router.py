"""Routes under /auth and /users."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Form, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import oauth2, service
from parley.auth.deps import CurrentUser
from parley.auth.models import User
from parley.auth.schemas import (
    BrowserSessionOut,
    OtpCodeIn,
    OtpSetupOut,
    RefreshIn,
    RegisterIn,
    SessionOut,
    TokenOut,
    UserOut,
)
from parley.common.errors import Unauthorized
from parley.common.pagination import Cursor, Limit, decode_cursor, split_page
from parley.common.responses import ANY_ROUTE, SIGNED_IN, errors
from parley.common.schemas import Page
from parley.deps import ResourcesDep, SessionDep, SettingsDep
from parley.ratelimit.auth import (
    limit_refresh,
    limit_registration,
    login_attempt,
    otp_attempt,
)
from parley.resources import Resources

log = structlog.get_logger("parley.auth")

router = APIRouter(tags=["auth"], responses=errors(*ANY_ROUTE))

FormUsername = Annotated[str, Form(min_length=1, max_length=64)]
FormPassword = Annotated[str, Form(min_length=1, max_length=256)]
FormOtp = Annotated[str | None, Form(max_length=16)]
# No caching of answers that carry credentials or secrets (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_REFUSED: dict[int | str, dict[str, Any]] = {
    status_code: {"model": oauth2.OAuthErrorOut, "description": description}
    for status_code, description in [
        (400, "`unsupported_grant_type`"),
        (401, "`invalid_grant`: bad credentials or refresh token, `otp_required`, `invalid_otp`"),
        (422, "`invalid_request`: a missing or malformed field"),
    ]
}


TOKEN_PARAMETERS = ("grant_type", "username", "password", "otp", "refresh_token")


def _token_out(pair: service.TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(limit_registration)],
    responses=errors(409, 429),
)
async def register(body: RegisterIn, session: SessionDep) -> UserOut:
    """Create an account."""
    user = await service.register(
        session, username=body.username, password=body.password, display_name=body.display_name
    )
    return UserOut.model_validate(user)


async def _authenticated_user(
    request: Request,
    session: AsyncSession,
    resources: Resources,
    *,
    username: str,
    password: str,
    otp: str | None,
) -> User:
    """The user a login proves, with its limits: per username and address, and per user for
    the one-time code (which is accepted once)."""
    async with login_attempt(request, resources, username):
        user = await service.authenticate(session, username=username, password=password)
        code = service.require_otp_code(user, otp)
        if code is not None:
            async with otp_attempt(resources, user.id):
                await service.check_login_otp(session, user, code)
    return user


async def token(
    request: Request,
    response: Response,
    session: SessionDep,
    resources: ResourcesDep,
    grant_type: Annotated[
        str | None,
        Form(max_length=64, description="`password` (the default) or `refresh_token`"),
    ] = None,
    username: Annotated[str | None, Form(min_length=1, max_length=64)] = None,
    password: Annotated[str | None, Form(min_length=1, max_length=256)] = None,
    otp: FormOtp = None,
    refresh_token: Annotated[str | None, Form(min_length=1, max_length=512)] = None,
) -> TokenOut:
    """OAuth2 token endpoint (RFC 6749): the password grant, or a refresh (§6)."""
    response.headers.update(NO_STORE)
    oauth2.check_not_repeated(await request.form(), TOKEN_PARAMETERS)
    if grant_type in (None, oauth2.PASSWORD_GRANT):
        if username is None:
            raise oauth2.missing_field("username")
        if password is None:
            raise oauth2.missing_field("password")
        user = await _authenticated_user(
            request, session, resources, username=username, password=password, otp=otp
        )
        return _token_out(await service.issue_tokens(session, user.id, resources.settings))
    if grant_type == oauth2.REFRESH_TOKEN_GRANT:
        if refresh_token is None:
            raise oauth2.missing_field("refresh_token")
        await limit_refresh(request, resources)
        pair = await service.rotate_refresh_token(session, refresh_token, resources.settings)
        return _token_out(pair)
    raise oauth2.UnsupportedGrantType(f"unsupported grant_type {grant_type!r}")


router.add_api_route(
    "/auth/token",
    token,
    methods=["POST"],
    responses={**errors(429), **TOKEN_REFUSED},
    route_class_override=oauth2.TokenEndpointRoute,
)


@router.post("/auth/refresh", dependencies=[Depends(limit_refresh)], responses=errors(401, 429))
async def refresh(
    body: RefreshIn, response: Response, session: SessionDep, settings: SettingsDep
) -> TokenOut:
    """Trade a refresh token for a new pair; the old one dies."""
    response.headers.update(NO_STORE)
    return _token_out(await service.rotate_refresh_token(session, body.refresh_token, settings))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshIn, session: SessionDep) -> None:
    """Revoke a refresh token."""
    await service.revoke_refresh_token(session, body.refresh_token)


@router.post("/auth/otp/setup", responses=errors(*SIGNED_IN, 409))
async def otp_setup(user: CurrentUser, response: Response, session: SessionDep) -> OtpSetupOut:
    """A new TOTP secret to scan; two-factor turns on only after `/auth/otp/enable`."""
    response.headers.update(NO_STORE)
    secret, uri = await service.begin_otp_setup(session, user)
    return OtpSetupOut(secret=secret, otpauth_uri=uri)


@router.post(
    "/auth/otp/enable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(*SIGNED_IN, 400, 409, 429),
)
async def otp_enable(
    body: OtpCodeIn, user: CurrentUser, session: SessionDep, resources: ResourcesDep
) -> None:
    """Turn on two-factor login with a code from the authenticator (used up by this)."""
    async with otp_attempt(resources, user.id):
        await service.enable_otp(session, user, body.code)


@router.post(
    "/auth/otp/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(*SIGNED_IN, 400, 429),
)
async def otp_disable(
    body: OtpCodeIn, user: CurrentUser, session: SessionDep, resources: ResourcesDep
) -> None:
    """Turn off two-factor login; needs a current code not used before."""
    async with otp_attempt(resources, user.id):
        await service.disable_otp(session, user, body.code)


@router.post("/auth/login", responses=errors(401, 429))
async def login(
    request: Request,
    response: Response,
    session: SessionDep,
    resources: ResourcesDep,
    username: FormUsername,
    password: FormPassword,
    otp: FormOtp = None,
) -> SessionOut:
    """Browser login: sets an HttpOnly session cookie and returns the CSRF token."""
    response.headers.update(NO_STORE)
    settings = resources.settings
    user = await _authenticated_user(
        request, session, resources, username=username, password=password, otp=otp
    )
    cookie, csrf = await service.start_browser_session(session, user.id, settings)
    response.set_cookie(
        settings.session_cookie_name,
        cookie,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path=(settings.root_path or "") + "/",
    )
    return SessionOut(csrf_token=csrf)


@router.get("/auth/session", responses=errors(401))
async def browser_session(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> BrowserSessionOut:
    """The browser session behind the cookie: its user and CSRF token (a reloaded page
    stays signed in)."""
    cookie = request.cookies.get(settings.session_cookie_name)
    resumed = await service.resume_browser_session(session, cookie, settings) if cookie else None
    if resumed is None:
        raise Unauthorized("not authenticated")
    user, csrf = resumed
    response.headers.update(NO_STORE)
    return BrowserSessionOut(user=UserOut.model_validate(user), csrf_token=csrf)


@router.post(
    "/auth/logout-session", status_code=status.HTTP_204_NO_CONTENT, responses=errors(*SIGNED_IN)
)
async def logout_session(
    request: Request,
    user: CurrentUser,
    response: Response,
    session: SessionDep,
    resources: ResourcesDep,
) -> None:
    """End the browser session behind the cookie (needs the CSRF header like any write),
    and close the sockets it opened, in every process."""
    del user  # authentication (and the CSRF check) is the point of the dependency
    settings = resources.settings
    cookie = request.cookies.get(settings.session_cookie_name)
    ended = await service.end_browser_session(session, cookie) if cookie else None
    if ended is not None:
        # The cookie's owner: a bearer token sent along may be someone else's.
        await _close_sockets_of(resources, ended.user_id, ended.id)
    response.delete_cookie(settings.session_cookie_name, path=(settings.root_path or "") + "/")


async def _close_sockets_of(resources: Resources, user_id: int, browser_session_id: int) -> None:
    """Best effort: the session is gone whatever happens here, and a socket that misses
    the notice cannot open again with its cookie."""
    try:
        await resources.hub.end_browser_session(user_id, browser_session_id)
    except Exception as exc:  # the bus is unreachable
        log.warning("could not close the sockets of an ended session", error=str(exc)[:200])


@router.get("/users/me", responses=errors(*SIGNED_IN))
async def me(user: CurrentUser) -> UserOut:
    """The caller's own account."""
    return UserOut.model_validate(user)


@router.get("/users", responses=errors(*SIGNED_IN))
async def search_users(
    user: CurrentUser,
    session: SessionDep,
    query: Annotated[str, Query(max_length=64)] = "",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[UserOut]:
    """Users whose username starts with `query`, in username order."""
    del user
    after = decode_cursor(cursor, str)[0] if cursor else None
    users = await service.search_users(session, prefix=query, after_username=after, limit=limit + 1)
    kept, next_cursor = split_page(users, limit, lambda u: (u.username,))
    return Page[UserOut](items=[UserOut.model_validate(u) for u in kept], next_cursor=next_cursor)
