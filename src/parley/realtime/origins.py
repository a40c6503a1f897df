"""Which browser pages may open a cookie-authenticated socket (cross-site WebSocket hijacking).

A browser sends the session cookie with a WebSocket handshake from any page, so the
`Origin` of a cookie-authenticated socket must be the server's own or one configured in
`PARLEY_CORS_ORIGINS`. Browsers always send `Origin` on a WebSocket handshake; a client
that sends none is not a browser page, and an opaque origin (`null`) is never allowed.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _normalize(origin: str) -> str:
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep:
        return origin.strip().lower()
    host = rest.rstrip("/")
    name, colon, port = host.rpartition(":")
    if colon and port == _DEFAULT_PORTS.get(scheme) and "]" not in port:
        host = name
    return f"{scheme}://{host}"


def own_origin(conn: HTTPConnection) -> str | None:
    """The origin of this server as the client reached it (`Host`, behind trusted proxies
    the forwarded scheme)."""
    host = conn.headers.get("host")
    if not host:
        return None
    scheme = "https" if conn.url.scheme in ("https", "wss") else "http"
    return _normalize(f"{scheme}://{host}")


def origin_allowed(conn: HTTPConnection, extra_origins: list[str]) -> bool:
    """True when the handshake's `Origin` is absent, ours, or one of `extra_origins`."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    if origin.strip().lower() == "null":
        return False
    wanted = _normalize(origin)
    if wanted == own_origin(conn):
        return True
    return wanted in {_normalize(o) for o in extra_origins}
