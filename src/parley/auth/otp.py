"""TOTP (RFC 6238) two-factor codes with pyotp."""

from __future__ import annotations

import pyotp

ISSUER = "Parley"


def new_otp_secret() -> str:
    """A random base32 TOTP secret."""
    return str(pyotp.random_base32())


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER))


def verify_otp(secret: str, code: str) -> bool:
    """True when `code` is the current code, allowing one step of clock drift."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return False
    return bool(pyotp.TOTP(secret).verify(code, valid_window=1))
