"""Why a page could not be fetched.

Every failure of :func:`parley.parser.fetch_page` is a :class:`FetchError`. Its ``message``
is short and readable (it becomes the job's ``error``), and ``transient`` tells the caller
whether trying again later may succeed.
"""

from __future__ import annotations

from typing import Any

_TRANSIENT_STATUS = frozenset({408, 425, 429})


class FetchError(Exception):
    """A page could not be fetched.

    ``message`` is meant for people; ``transient`` is true when a retry with backoff may
    succeed. The base class is used for unexpected failures, which count as transient
    unless said otherwise.
    """

    transient: bool = True

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the subclass, the message and every attribute through pickling (Celery).
        return (_restore, (type(self), dict(self.__dict__)))


def _restore(cls: type[FetchError], state: dict[str, Any]) -> FetchError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class InvalidURLError(FetchError):
    """The URL is not an http(s) URL with a host that could be fetched."""

    transient = False


class BlockedAddressError(FetchError):
    """The host resolves to an address that is not globally routable."""

    transient = False


class TooManyRedirectsError(FetchError):
    """The page redirected more often than allowed."""

    transient = False


class TooLargeError(FetchError):
    """The body is larger than allowed."""

    transient = False


class NotHTMLError(FetchError):
    """The server answered with something other than an HTML document."""

    transient = False


class HTTPStatusError(FetchError):
    """The server answered with an error status.

    Transient for 408, 425, 429 and every 5xx; permanent for any other status.
    """

    def __init__(self, status_code: int, message: str | None = None) -> None:
        self.status_code = status_code
        super().__init__(
            message or f"the server answered HTTP {status_code}",
            transient=status_code in _TRANSIENT_STATUS or 500 <= status_code <= 599,
        )


class FetchTimeoutError(FetchError):
    """The fetch did not finish within its deadline."""

    transient = True


class FetchConnectError(FetchError):
    """The host could not be resolved or reached, or the connection broke."""

    transient = True
