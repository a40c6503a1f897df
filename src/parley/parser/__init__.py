"""Fetch web pages safely and extract what they say about themselves.

Pure and standalone: no database, no web framework. :func:`fetch_page` does the only I/O;
:func:`extract_page` is a pure function from bytes and a URL to an :class:`ExtractedPage`.
"""

from parley.parser.address_guard import is_public_address, resolve_checked
from parley.parser.errors import (
    BlockedAddressError,
    FetchConnectError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    InvalidURLError,
    NotHTMLError,
    TooLargeError,
    TooManyRedirectsError,
)
from parley.parser.extract import ExtractedPage, Link, extract_page
from parley.parser.fetch import DEFAULT_USER_AGENT, FetchedPage, FetchLimits, fetch_page
from parley.parser.urls import MAX_URL, is_web_url

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_URL",
    "BlockedAddressError",
    "ExtractedPage",
    "FetchConnectError",
    "FetchError",
    "FetchLimits",
    "FetchTimeoutError",
    "FetchedPage",
    "HTTPStatusError",
    "InvalidURLError",
    "Link",
    "NotHTMLError",
    "TooLargeError",
    "TooManyRedirectsError",
    "extract_page",
    "fetch_page",
    "is_public_address",
    "is_web_url",
    "resolve_checked",
]
