"""Request and response bodies of the auth and user routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from parley.common.schemas import CamelModel, RequestModel
from parley.common.text import is_blank

USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")

Password = Annotated[str, Field(min_length=8, max_length=256)]


class RegisterIn(RequestModel):
    """A new account. Usernames are case-insensitive and stored lower-case."""

    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,32}$", examples=["alice"])
    password: Password
    display_name: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"\S")

    @field_validator("username")
    @classmethod
    def _username_shape(cls, value: str) -> str:
        value = value.lower()
        if not USERNAME_RE.fullmatch(value):
            raise ValueError("username must be 3-32 characters of a-z, 0-9, '_', '.', '-'")
        return value

    @field_validator("display_name")
    @classmethod
    def _display_name_text(cls, value: str | None) -> str | None:
        if value is not None and is_blank(value):
            raise ValueError("displayName must not be blank")
        return value.strip() if value is not None else None


class UserOut(CamelModel):
    """A user as others see it."""

    id: int
    username: str
    display_name: str
    created_at: datetime
    otp_enabled: bool


class TokenOut(BaseModel):
    """The OAuth2 token response (RFC 6749 keys)."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    refresh_token: str


class RefreshIn(RequestModel):
    """A refresh token to rotate or revoke."""

    refresh_token: str = Field(min_length=1, max_length=512)


class OtpSetupOut(CamelModel):
    """A new TOTP secret, shown once, before it is enabled."""

    secret: str
    otpauth_uri: str


class OtpCodeIn(RequestModel):
    """A six-digit TOTP code."""

    code: str = Field(min_length=1, max_length=16)


class SessionOut(CamelModel):
    """The CSRF token that cookie-authenticated writes must echo in `X-CSRF-Token`."""

    csrf_token: str


class BrowserSessionOut(CamelModel):
    """The current browser session: who is signed in, and the CSRF token writes echo."""

    user: UserOut
    csrf_token: str
