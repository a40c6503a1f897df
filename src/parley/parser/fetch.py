"""Fetch one web page safely: HTML only, bounded in size, time and redirects.

Every hop (the first request and each redirect) resolves its host, checks every address
with the address guard, and then connects to exactly the address that was checked, sending
the real name in the ``Host`` header and as the TLS server name. A DNS answer that changes
between the check and the connection (DNS rebinding) therefore cannot reach anything else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
from collections.abc import Awaitable, Callable

import httpx

from parley.parser.address_guard import resolve_checked
from parley.parser.errors import (
    FetchConnectError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    InvalidURLError,
    NotHTMLError,
    TooLargeError,
    TooManyRedirectsError,
)

DEFAULT_USER_AGENT = "Parley/0.1 (+link-preview; https://github.com/parley-chat/parley)"

HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve ``(host, port)`` to the checked addresses to connect to, or raise FetchError."""

ProgressHook = Callable[[str], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class FetchLimits:
    """Bounds for one fetch; ``timeout`` (seconds) covers the whole fetch, redirects included."""

    max_redirects: int = 5
    max_bytes: int = 5 * 1024 * 1024
    timeout: float = 10.0


@dataclasses.dataclass(frozen=True)
class FetchedPage:
    """A fetched HTML document.

    ``url`` is the URL asked for, as given; ``final_url`` (normalised) is the one that
    answered after redirects.
    ``content_type`` is the response's Content-Type as sent; ``headers`` has lower-case
    names (repeated headers joined with ", "); ``body`` is decoded from any
    Content-Encoding but not from its charset.
    """

    url: str
    final_url: str
    status_code: int
    content_type: str
    headers: dict[str, str]
    body: bytes


async def fetch_page(
    url: str,
    *,
    allow_private: bool = False,
    limits: FetchLimits = FetchLimits(),
    user_agent: str = DEFAULT_USER_AGENT,
    on_progress: ProgressHook | None = None,
) -> FetchedPage:
    """Fetch the HTML page at ``url``, or raise a :class:`FetchError` saying why not.

    Follows at most ``limits.max_redirects`` redirects, reads at most ``limits.max_bytes``,
    and gives up after ``limits.timeout`` seconds in total. Only http and https URLs and
    HTML responses are accepted. Unless ``allow_private``, every hop is refused when its
    host resolves to any address that is not public (see :func:`is_public_address`).
    ``on_progress`` is awaited with ``"fetching"`` before the first request; an exception
    it raises propagates unchanged. No other exception than FetchError escapes.
    """
    resolver = functools.partial(resolve_checked, allow_private=allow_private)
    return await fetch_page_with_resolver(
        url, resolver=resolver, limits=limits, user_agent=user_agent, on_progress=on_progress
    )


async def fetch_page_with_resolver(
    url: str,
    *,
    resolver: Resolver,
    limits: FetchLimits = FetchLimits(),
    user_agent: str = DEFAULT_USER_AGENT,
    on_progress: ProgressHook | None = None,
) -> FetchedPage:
    """Like :func:`fetch_page`, with ``resolver`` deciding each hop's addresses.

    ``resolver`` is called once per hop; whatever it raises (a FetchError) ends the fetch.
    """
    start = _parse_url(url)
    if on_progress is not None:
        await on_progress("fetching")
    try:
        async with asyncio.timeout(limits.timeout):
            page = await _follow(start, resolver=resolver, limits=limits, user_agent=user_agent)
    except FetchError:
        raise
    except TimeoutError as exc:
        raise FetchTimeoutError(f"the page did not load within {limits.timeout:g} s") from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeoutError(f"the page did not load within {limits.timeout:g} s") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:  # refused, reset, dropped
        raise FetchConnectError(f"the connection to {start.host} failed: {_reason(exc)}") from exc
    except httpx.DecodingError as exc:
        raise FetchError(
            "the server sent a body that could not be decoded", transient=False
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"the fetch failed: {_reason(exc)}") from exc
    except Exception as exc:  # a fetch must fail with a FetchError, whatever broke
        raise FetchError(f"the fetch failed unexpectedly: {_reason(exc)}") from exc
    return dataclasses.replace(page, url=url)


async def _follow(
    start: httpx.URL, *, resolver: Resolver, limits: FetchLimits, user_agent: str
) -> FetchedPage:
    """Request ``start`` and follow its redirects, re-validating every hop."""
    client = httpx.AsyncClient(
        follow_redirects=False,
        verify=_ssl_context(),
        trust_env=False,  # a proxy would connect to names, not to the checked addresses
        timeout=httpx.Timeout(limits.timeout),
        # No connection reuse: each connection belongs to exactly one checked hop.
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": user_agent, "Accept": "text/html,application/xhtml+xml"},
    )
    async with client:
        current = start
        for redirects in range(limits.max_redirects + 1):
            response = await _open(client, current, resolver=resolver)
            try:
                if response.status_code not in _REDIRECT_STATUSES:
                    return await _read_page(response, final_url=current, limits=limits)
                location = response.headers.get("location")
            finally:
                await response.aclose()
            if not location:
                raise HTTPStatusError(
                    response.status_code,
                    f"the server answered HTTP {response.status_code} without a Location",
                )
            if redirects == limits.max_redirects:
                break
            try:
                current = _parse_url(str(current.join(location)))
            except httpx.InvalidURL as exc:
                raise InvalidURLError(f"the page redirected to an invalid URL: {exc}") from exc
    raise TooManyRedirectsError(f"the page redirected more than {limits.max_redirects} times")


async def _open(client: httpx.AsyncClient, url: httpx.URL, *, resolver: Resolver) -> httpx.Response:
    """Send a GET for ``url`` to one of the addresses ``resolver`` approved."""
    host = url.raw_host.decode("ascii")
    port = url.port if url.port is not None else _DEFAULT_PORTS[url.scheme]
    addresses = await resolver(host, port)
    host_header = f"[{host}]" if ":" in host else host
    if url.port is not None and url.port != _DEFAULT_PORTS[url.scheme]:
        host_header = f"{host_header}:{url.port}"
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}

    last_error: httpx.ConnectError | None = None
    for address in addresses:
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={"Host": host_header},
            extensions=extensions,
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:  # nothing was sent yet: try the next address
            last_error = exc
    reason = _reason(last_error) if last_error is not None else "no address to connect to"
    raise FetchConnectError(f"could not connect to {host}: {reason}") from last_error


async def _read_page(
    response: httpx.Response, *, final_url: httpx.URL, limits: FetchLimits
) -> FetchedPage:
    """Check the status and type of a final response and read its body within the cap."""
    if not 200 <= response.status_code <= 299:
        raise HTTPStatusError(response.status_code)
    content_type = response.headers.get("content-type", "").strip()
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in HTML_CONTENT_TYPES:
        shown = media_type or "no content type"
        raise NotHTMLError(f"the page is not HTML ({shown})")
    too_large = TooLargeError(f"the page is larger than {_size(limits.max_bytes)}")
    declared = response.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limits.max_bytes:
        raise too_large

    body = bytearray()
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > limits.max_bytes:
            raise too_large
        body += chunk
    return FetchedPage(
        url=str(final_url),  # the caller puts back the URL it was asked for
        final_url=str(final_url),
        status_code=response.status_code,
        content_type=content_type,
        headers=dict(response.headers.items()),
        body=bytes(body),
    )


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every fetch: loading the CA bundle costs ~100 ms."""
    return httpx.create_ssl_context()


def _parse_url(raw: str) -> httpx.URL:
    """Parse an absolute http(s) URL with a host, or raise InvalidURLError."""
    try:
        url = httpx.URL(raw.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidURLError(f"not a valid URL: {raw[:200]!r}") from exc
    if url.scheme not in _DEFAULT_PORTS:
        shown = f"{url.scheme}:" if url.scheme else "no scheme"
        raise InvalidURLError(f"only http and https URLs can be fetched, not {shown}")
    if not url.raw_host or not url.raw_host.isascii():
        raise InvalidURLError(f"the URL has no valid host: {raw[:200]!r}")
    if url.userinfo:
        raise InvalidURLError("URLs with a user name or password are not fetched")
    return url


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"
