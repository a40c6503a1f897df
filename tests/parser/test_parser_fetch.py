"""The fetcher against a real HTTP server on loopback."""

from __future__ import annotations

import pickle
import ssl

import pytest
from parser_testserver import PAGE_HTML, PageServer, TLSPageServer

from parley.parser import (
    DEFAULT_USER_AGENT,
    BlockedAddressError,
    FetchConnectError,
    FetchError,
    FetchLimits,
    FetchTimeoutError,
    HTTPStatusError,
    InvalidURLError,
    NotHTMLError,
    TooLargeError,
    TooManyRedirectsError,
    extract_page,
    fetch_page,
    resolve_checked,
)
from parley.parser import fetch as fetch_module
from parley.parser.fetch import fetch_page_with_resolver

pytestmark = pytest.mark.mode_independent


async def test_fetches_a_page(page_server: PageServer) -> None:
    url = page_server.url("/page.html")
    page = await fetch_page(url, allow_private=True)
    assert page.url == url
    assert page.final_url == url
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.body == PAGE_HTML


async def test_fetched_page_feeds_the_extractor(page_server: PageServer) -> None:
    page = await fetch_page(page_server.url("/page.html"), allow_private=True)
    extracted = extract_page(page.body, url=page.final_url, headers=page.headers)
    assert extracted.title == "OG title"
    assert extracted.image_url == page_server.url("/img/cover.png")


async def test_accepts_xhtml_and_decodes_gzip(page_server: PageServer) -> None:
    xhtml = await fetch_page(page_server.url("/xhtml"), allow_private=True)
    assert xhtml.body == PAGE_HTML
    zipped = await fetch_page(page_server.url("/gzip"), allow_private=True)
    assert zipped.body == PAGE_HTML


async def test_sends_user_agent_and_original_host(page_server: PageServer) -> None:
    page = await fetch_page(page_server.url("/echo-headers"), allow_private=True)
    assert f"<p id='host'>127.0.0.1:{page_server.port}</p>".encode() in page.body
    assert f"<p id='ua'>{DEFAULT_USER_AGENT}</p>".encode() in page.body


async def test_reports_progress_before_fetching(page_server: PageServer) -> None:
    seen: list[str] = []

    async def progress(stage: str) -> None:
        seen.append(stage)

    await fetch_page(page_server.url("/page.html"), allow_private=True, on_progress=progress)
    assert seen == ["fetching"]


async def test_bracketed_ipv6(page_server_v6: PageServer) -> None:
    url = page_server_v6.url("/echo-headers")
    page = await fetch_page(url, allow_private=True)
    assert f"<p id='host'>[::1]:{page_server_v6.port}</p>".encode() in page.body


# -- redirects --------------------------------------------------------------------------


async def test_follows_five_redirects(page_server: PageServer) -> None:
    page = await fetch_page(page_server.url("/redirect/5"), allow_private=True)
    assert page.url == page_server.url("/redirect/5")
    assert page.final_url == page_server.url("/page.html")
    assert page.body == PAGE_HTML


async def test_refuses_a_sixth_redirect(page_server: PageServer) -> None:
    with pytest.raises(TooManyRedirectsError) as caught:
        await fetch_page(page_server.url("/redirect/6"), allow_private=True)
    assert caught.value.transient is False


async def test_redirect_limit_is_configurable(page_server: PageServer) -> None:
    limits = FetchLimits(max_redirects=0)
    with pytest.raises(TooManyRedirectsError):
        await fetch_page(page_server.url("/redirect/1"), allow_private=True, limits=limits)


async def test_redirect_loop(page_server: PageServer) -> None:
    with pytest.raises(TooManyRedirectsError):
        await fetch_page(page_server.url("/redirect-loop"), allow_private=True)


async def test_redirect_without_location(page_server: PageServer) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        await fetch_page(page_server.url("/no-location"), allow_private=True)
    assert caught.value.status_code == 302
    assert caught.value.transient is False


async def test_redirect_to_another_scheme_is_refused(page_server: PageServer) -> None:
    with pytest.raises(InvalidURLError):
        await fetch_page(page_server.url("/redirect-to-ftp"), allow_private=True)


async def test_redirect_to_loopback_is_checked_again(page_server: PageServer) -> None:
    """The first hop is let through as if it were public; the redirect's hop is refused."""
    hops: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        hops.append(host)
        if host == "public.example":
            return ["127.0.0.1"]  # pretend this name is a public site
        return await resolve_checked(host, port, allow_private=False)

    url = f"http://public.example:{page_server.port}/redirect-to-private"
    with pytest.raises(BlockedAddressError) as caught:
        await fetch_page_with_resolver(url, resolver=resolver)
    assert hops == ["public.example", "127.0.0.1"]
    assert caught.value.transient is False


async def test_connects_to_the_checked_address_with_the_real_host(
    page_server: PageServer,
) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    url = f"http://public.example:{page_server.port}/echo-headers"
    page = await fetch_page_with_resolver(url, resolver=resolver)
    assert page.final_url == url
    assert f"<p id='host'>public.example:{page_server.port}</p>".encode() in page.body


async def test_tries_the_next_checked_address(page_server: PageServer) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["::1", "127.0.0.1"] if port == page_server.port else ["127.0.0.1"]

    page = await fetch_page_with_resolver(page_server.url("/page.html"), resolver=resolver)
    assert page.body == PAGE_HTML


async def test_redirect_to_loopback_with_private_allowed(page_server: PageServer) -> None:
    page = await fetch_page(page_server.url("/redirect-to-private"), allow_private=True)
    assert page.final_url == f"http://127.0.0.1:{page_server.port}/page.html"


# -- size, type, time, status -------------------------------------------------------------


async def test_refuses_large_body_by_content_length(page_server: PageServer) -> None:
    with pytest.raises(TooLargeError) as caught:
        await fetch_page(page_server.url("/big"), allow_private=True)
    assert caught.value.transient is False
    assert "5 MiB" in caught.value.message


async def test_stops_reading_a_large_chunked_body(page_server: PageServer) -> None:
    with pytest.raises(TooLargeError):
        await fetch_page(page_server.url("/big-no-length"), allow_private=True)


async def test_body_at_the_limit_is_accepted(page_server: PageServer) -> None:
    limits = FetchLimits(max_bytes=1000)
    page = await fetch_page(page_server.url("/exactly/1000"), allow_private=True, limits=limits)
    assert len(page.body) == 1000
    with pytest.raises(TooLargeError):
        await fetch_page(page_server.url("/exactly/1001"), allow_private=True, limits=limits)


@pytest.mark.parametrize("path", ["/json", "/no-content-type"])
async def test_refuses_non_html(page_server: PageServer, path: str) -> None:
    with pytest.raises(NotHTMLError) as caught:
        await fetch_page(page_server.url(path), allow_private=True)
    assert caught.value.transient is False


async def test_slow_answer_times_out(page_server: PageServer) -> None:
    with pytest.raises(FetchTimeoutError) as caught:
        await fetch_page(
            page_server.url("/slow"), allow_private=True, limits=FetchLimits(timeout=0.5)
        )
    assert caught.value.transient is True


async def test_deadline_covers_the_whole_body(page_server: PageServer) -> None:
    """Each chunk arrives in time, but the whole body does not."""
    with pytest.raises(FetchTimeoutError):
        await fetch_page(
            page_server.url("/trickle"), allow_private=True, limits=FetchLimits(timeout=0.5)
        )


@pytest.mark.parametrize(
    ("status", "transient"),
    [(404, False), (403, False), (410, False), (408, True), (429, True), (503, True), (500, True)],
)
async def test_error_status(page_server: PageServer, status: int, transient: bool) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        await fetch_page(page_server.url(f"/status/{status}"), allow_private=True)
    assert caught.value.status_code == status
    assert caught.value.transient is transient
    assert str(status) in caught.value.message


async def test_refused_connection(closed_port: int) -> None:
    with pytest.raises(FetchConnectError) as caught:
        await fetch_page(f"http://127.0.0.1:{closed_port}/", allow_private=True)
    assert caught.value.transient is True


async def test_dropped_connection(page_server: PageServer) -> None:
    with pytest.raises(FetchConnectError) as caught:
        await fetch_page(page_server.url("/drop"), allow_private=True)
    assert caught.value.transient is True


async def test_unresolvable_host() -> None:
    with pytest.raises(FetchConnectError) as caught:
        await fetch_page("http://no-such-host.invalid/", allow_private=True)
    assert caught.value.transient is True


# -- the guard, on: nothing here ever connects ------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://LOCALHOST:8080/x",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://10.1.2.3/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.1/",
        "http://224.0.0.1/",
        "https://192.0.2.1/",
    ],
)
async def test_guard_refuses_non_public_hosts(url: str) -> None:
    with pytest.raises(BlockedAddressError) as caught:
        await fetch_page(url)
    assert caught.value.transient is False
    assert "not a public" in caught.value.message


async def test_guard_refuses_the_test_server(page_server: PageServer) -> None:
    with pytest.raises(BlockedAddressError):
        await fetch_page(page_server.url("/page.html"))
    with pytest.raises(BlockedAddressError):
        await fetch_page(page_server.url("/redirect-to-private"))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/html,<p>x</p>",
        "example.com/page",
        "/relative/path",
        "http://",
        "http:///path-only",
        "http://user:secret@example.com/",
        "",
        "http://[::1/",
    ],
)
async def test_refuses_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        await fetch_page(url)
    assert caught.value.transient is False


async def test_progress_is_not_reported_for_an_invalid_url() -> None:
    seen: list[str] = []

    async def progress(stage: str) -> None:
        seen.append(stage)

    with pytest.raises(InvalidURLError):
        await fetch_page("ftp://example.com/", on_progress=progress)
    assert seen == []


# -- the errors themselves ----------------------------------------------------------------


def test_errors_survive_pickling() -> None:
    for error in (
        HTTPStatusError(503),
        BlockedAddressError("refused"),
        FetchError("odd", transient=False),
    ):
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301
        assert type(copy) is type(error)
        assert copy.message == error.message
        assert copy.transient == error.transient
        assert str(copy) == str(error)
    status = pickle.loads(pickle.dumps(HTTPStatusError(429)))  # noqa: S301
    assert isinstance(status, HTTPStatusError)
    assert status.status_code == 429


def test_unexpected_failures_are_transient_by_default() -> None:
    assert FetchError("boom").transient is True
    assert FetchTimeoutError("slow").transient is True
    assert InvalidURLError("bad").transient is False


# -- TLS: connect to the checked address, verify the real name ----------------------------


async def test_https_verifies_the_real_name_at_the_checked_address(
    tls_page_server: TLSPageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusting = ssl.create_default_context(cafile=tls_page_server.cafile)
    monkeypatch.setattr(fetch_module, "_ssl_context", lambda: trusting)

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "public.example"
        return ["127.0.0.1"]

    url = f"https://public.example:{tls_page_server.port}/echo-headers"
    page = await fetch_page_with_resolver(url, resolver=resolver)
    assert page.final_url == url
    assert f"<p id='host'>public.example:{tls_page_server.port}</p>".encode() in page.body
    assert tls_page_server.server_names[-1] == "public.example"


async def test_https_refuses_an_untrusted_certificate(tls_page_server: TLSPageServer) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    url = f"https://public.example:{tls_page_server.port}/page.html"
    with pytest.raises(FetchConnectError) as caught:
        await fetch_page_with_resolver(url, resolver=resolver)
    assert caught.value.transient is True
    assert tls_page_server.server_names[-1] == "public.example"


async def test_https_certificate_for_another_name_is_refused(
    tls_page_server: TLSPageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusting = ssl.create_default_context(cafile=tls_page_server.cafile)
    monkeypatch.setattr(fetch_module, "_ssl_context", lambda: trusting)

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with pytest.raises(FetchConnectError):
        await fetch_page_with_resolver(
            f"https://other.example:{tls_page_server.port}/page.html", resolver=resolver
        )


async def test_page_url_is_the_url_as_given(page_server: PageServer) -> None:
    given = f"HTTP://127.0.0.1:{page_server.port}/redirect/1"
    page = await fetch_page(given, allow_private=True)
    assert page.url == given
    assert page.final_url == page_server.url("/page.html")
