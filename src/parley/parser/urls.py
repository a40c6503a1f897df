"""Which URLs the fetcher takes: absolute http(s), with a host, of bounded length."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL = 2048
"""The longest URL stored or fetched."""


def is_web_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host, no credentials, at most 2048 chars."""
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
    )
