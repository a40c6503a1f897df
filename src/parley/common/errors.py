"""Domain errors raised by services; the app maps each to its HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken; `status_code` and `detail` say which and how to answer."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(DomainError):
    """The request is well-formed but not allowed in this state."""

    status_code = 400


class Unauthorized(DomainError):
    """No valid credentials."""

    status_code = 401


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
