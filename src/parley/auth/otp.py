"""TOTP (RFC 6238) two-factor codes with pyotp."""

from __future__ import annotations

import secrets
import time

import pyotp

ISSUER = "Parley"
# Codes of the previous and the next time step are accepted too (clock drift, RFC 6238 §5.2).
DRIFT_STEPS = 1


def new_otp_secret() -> str:
    """A random base32 TOTP secret."""
    return str(pyotp.random_base32())


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER))


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step (RFC 6238's T) whose code `code` is, within one step of now; else None.

    The caller accepts a step only once per user (it stores the last one accepted), so that
    a code cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    # isdigit() alone also takes other scripts' digits, which compare_digest refuses.
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // totp.interval)  # RFC 6238's T
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if secrets.compare_digest(str(totp.generate_otp(step)), code):
            return step
    return None
