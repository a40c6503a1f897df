"""The limits of the auth routes: login per username and per address, register, refresh.

- Login (`/auth/token`, `/auth/login`): every attempt counts against the client's address
  (password hashing is the costly part, whatever the outcome); only failed attempts count
  against the username, so that an account's owner never locks themselves out by logging in
  often. A request is counted before the password is checked and given back once it proves
  to be no failed guess, so concurrent guesses cannot slip past the limit.
- Register and refresh: every request counts against the address.

When the store is unreachable, login and registration fail closed (503: guessing must not
become unlimited during an outage), refresh fails open (refresh tokens cannot be guessed;
the limit only guards against floods, and live sessions should survive a Redis outage).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from fastapi import Request
from redis.exceptions import RedisClusterException, RedisError

from parley.auth.service import OtpRequired, WrongOtp
from parley.common.errors import RateLimited, Unauthorized, Unavailable
from parley.deps import ResourcesDep
from parley.ratelimit.core import Charge, Exhausted, Limiter, Rate, charge
from parley.resources import Resources
from parley.settings import Settings

log = structlog.get_logger("parley.ratelimit")

LOGIN_LIMITED = "too many login attempts, try again later"
REGISTER_LIMITED = "too many registrations from this address, try again later"
REFRESH_LIMITED = "too many token refreshes from this address, try again later"
OTP_LIMITED = "too many wrong one-time codes, try again later"


class LimiterUnavailable(Unavailable):
    """The rate-limit store failed (503)."""


@dataclass(frozen=True)
class AuthLimits:
    """The rates of the auth routes, from settings (all disabled when limits are off)."""

    login_username: Rate
    login_ip: Rate
    register_ip: Rate
    refresh_ip: Rate
    otp_user: Rate

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimits:
        """The configured rates; `PARLEY_RATE_LIMIT_ENABLED=false` turns all of them off."""

        def rate(limit: int, seconds: float) -> Rate:
            return Rate(limit if settings.rate_limit_enabled else 0, seconds)

        s = settings
        return cls(
            login_username=rate(s.rate_limit_login_username, s.rate_limit_login_username_seconds),
            login_ip=rate(s.rate_limit_login_ip, s.rate_limit_login_ip_seconds),
            register_ip=rate(s.rate_limit_register_ip, s.rate_limit_register_ip_seconds),
            refresh_ip=rate(s.rate_limit_refresh_ip, s.rate_limit_refresh_ip_seconds),
            otp_user=rate(s.rate_limit_otp_user, s.rate_limit_otp_user_seconds),
        )


def client_address(request: Request) -> str:
    """The caller's address; IPv6 by its /64 network.

    Behind proxies it is the rightmost X-Forwarded-For address that is not one of
    PARLEY_TRUSTED_PROXIES (the app's ProxyHeadersMiddleware puts it into the request), so
    that a client cannot choose its own by sending the header.
    One IPv6 host usually owns a whole /64, so limiting single addresses would be no limit.
    """
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def enforce(
    limiter: Limiter, charges: Sequence[Charge], detail: str, *, fail_open: bool = False
) -> None:
    """Count the request, or raise 429 with `Retry-After`.

    When the store fails, raise `LimiterUnavailable` (503), or with `fail_open` let the
    request through uncounted.
    """
    try:
        await limiter.take(charges)
    except Exhausted as exc:
        raise RateLimited(detail, retry_after=exc.retry_after) from exc
    except (RedisError, RedisClusterException, OSError) as exc:
        if not fail_open:
            raise LimiterUnavailable(f"rate limiter: {type(exc).__name__}: {exc}") from exc
        log.warning("rate limiter unavailable, not limiting", error=f"{type(exc).__name__}")


async def _give_back_quietly(limiter: Limiter, charges: Sequence[Charge]) -> None:
    try:
        await limiter.give_back(charges)
    except (RedisError, RedisClusterException, OSError) as exc:  # stays counted: harmless
        log.warning("rate limiter unavailable, attempt kept", error=f"{type(exc).__name__}")


@asynccontextmanager
async def login_attempt(
    request: Request, resources: Resources, username: str
) -> AsyncIterator[None]:
    """Count a login attempt around the credential check; 429 before it when spent.

    The username counts as the service compares it (lower-case), whether or not an account
    has it, so that a limited unknown user looks exactly like a limited real one.
    """
    limits = AuthLimits.from_settings(resources.settings)
    limiter = resources.limiter
    per_user = charge("login:user", username.lower(), limits.login_username)
    per_ip = charge("login:ip", client_address(request), limits.login_ip)
    await enforce(limiter, [per_user, per_ip], LOGIN_LIMITED)
    try:
        yield
    except Unauthorized as exc:
        if isinstance(exc, OtpRequired):  # the password was right: no failed guess
            await _give_back_quietly(limiter, [per_user])
        raise
    await _give_back_quietly(limiter, [per_user])


async def limit_registration(request: Request, resources: ResourcesDep) -> None:
    """Dependency: count a registration against the caller's address."""
    rate = AuthLimits.from_settings(resources.settings).register_ip
    address_charge = charge("register:ip", client_address(request), rate)
    await enforce(resources.limiter, [address_charge], REGISTER_LIMITED)


async def limit_refresh(request: Request, resources: ResourcesDep) -> None:
    """Dependency: count a token refresh against the caller's address (fails open)."""
    rate = AuthLimits.from_settings(resources.settings).refresh_ip
    address_charge = charge("refresh:ip", client_address(request), rate)
    await enforce(resources.limiter, [address_charge], REFRESH_LIMITED, fail_open=True)


@asynccontextmanager
async def otp_attempt(resources: Resources, user_id: int) -> AsyncIterator[None]:
    """Count a one-time code check against the user; 429 before it when spent.

    Only a wrong (or replayed) code stays counted: the limit slows guessing, not use.
    """
    rate = AuthLimits.from_settings(resources.settings).otp_user
    limiter = resources.limiter
    per_user = charge("otp:user", str(user_id), rate)
    await enforce(limiter, [per_user], OTP_LIMITED)
    try:
        yield
    except WrongOtp:
        raise
    except Exception:
        await _give_back_quietly(limiter, [per_user])
        raise
    await _give_back_quietly(limiter, [per_user])
