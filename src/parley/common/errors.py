"""The one family of errors the app answers with; `parley.errors` maps it to HTTP, once.

Services and routers raise these (never `HTTPException`): each says its status, its detail
and, where the answer needs one, a header (`WWW-Authenticate`, `Retry-After`).
"""

from __future__ import annotations

import math


class DomainError(Exception):
    """A rule was broken; `status_code`, `detail` and `headers` say how to answer."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def headers(self) -> dict[str, str] | None:
        """Headers the answer must carry."""
        return None


class BadRequest(DomainError):
    """The request is well-formed but not allowed in this state."""

    status_code = 400


class Unauthorized(DomainError):
    """No valid credentials."""

    status_code = 401

    @property
    def headers(self) -> dict[str, str] | None:
        """Bearer authentication is how to get in."""
        return {"WWW-Authenticate": "Bearer"}


class PaymentRequired(DomainError):
    """The caller's plan does not allow this (a plan limit)."""

    status_code = 402


class Forbidden(DomainError):
    """Authenticated, but not allowed."""

    status_code = 403


class NotFound(DomainError):
    """Missing, or not visible to the caller."""

    status_code = 404


class Conflict(DomainError):
    """Clashes with the current state."""

    status_code = 409


class Invalid(DomainError):
    """Semantically invalid input that schema validation cannot catch."""

    status_code = 422


class _RetryLater(DomainError):
    """An answer that says when to try again."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        """`Retry-After` in whole seconds, at least one."""
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class RateLimited(_RetryLater):
    """Too many requests: try again after `retry_after` seconds."""

    status_code = 429


class Unavailable(_RetryLater):
    """A dependency (database, Redis, broker, Stripe) cannot answer now."""

    status_code = 503

    def __init__(self, detail: str, *, retry_after: float = 5) -> None:
        super().__init__(detail, retry_after=retry_after)
