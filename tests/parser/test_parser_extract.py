"""The extractor: examples from real-looking pages, and properties over any input."""

from __future__ import annotations

import string
from urllib.parse import urljoin

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.parser import ExtractedPage, Link, extract_page
from parley.parser.extract import (
    _CONTROL,
    MAX_DESCRIPTION,
    MAX_LINK_TEXT,
    MAX_LINKS,
    MAX_TEXT,
    MAX_TITLE,
    _absolute_url,
    _Base,
    _collapse,
    _visible_text,
)

pytestmark = pytest.mark.mode_independent

URL = "https://news.example.com/2024/05/article.html"

ARTICLE = """<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>Fallback title | News</title>
  <meta name="description" content="Plain description">
  <meta property="og:title" content="  The  real
     title ">
  <meta property="og:description" content="OG description">
  <meta property="og:image" content="/images/cover.jpg?size=large">
  <meta property="og:site_name" content="Example News">
  <style>body { color: red; }</style>
  <script>window.data = {"html": "<a href='/fake'>fake</a>"};</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/world/">World</a></nav>
  <article>
    <h1>Headline</h1>
    <p>First   paragraph
       with <b>bold</b> text.</p>
    <noscript><p>Enable JavaScript</p></noscript>
    <template><p>Template text</p></template>
    <script>document.write("<p>written</p>");</script>
    <p><a href="https://other.example.org/x?y=1#frag">  Other
       site </a></p>
    <a href="#comments">Jump</a>
    <a href="javascript:void(0)">Click</a>
    <a href="mailto:editor@example.com">Mail</a>
    <a href="tel:+123">Call</a>
    <a href="/world/">World again</a>
    <a href="//cdn.example.net/file">Protocol-relative</a>
    <a href="ftp://files.example.com/a">FTP</a>
  </article>
</body>
</html>
"""


def test_article_with_open_graph_tags() -> None:
    page = extract_page(ARTICLE.encode(), url=URL)
    assert page.title == "The real title"
    assert page.description == "OG description"
    assert page.image_url == "https://news.example.com/images/cover.jpg?size=large"
    assert page.site_name == "Example News"
    assert page.lang == "en-GB"
    assert page.links == [
        Link("https://news.example.com/", "Home"),
        Link("https://news.example.com/world/", "World"),
        Link("https://other.example.org/x?y=1#frag", "Other site"),
        Link("https://cdn.example.net/file", "Protocol-relative"),
    ]


def test_text_is_visible_text_only() -> None:
    text = extract_page(ARTICLE.encode(), url=URL).text
    assert "Headline" in text
    assert "First paragraph with bold text." in text
    for hidden in ("color: red", "window.data", "fake", "Enable JavaScript", "Template", "written"):
        assert hidden not in text
    assert "Fallback title" not in text  # the head is not body text
    assert "  " not in text
    assert text == text.strip()


def test_falls_back_to_title_and_meta_description() -> None:
    html = b"""<html><head><title>
        Just a   title </title><meta name="Description" content=" Described. "></head>
        <body>x</body></html>"""
    page = extract_page(html, url=URL)
    assert page.title == "Just a title"
    assert page.description == "Described."
    assert page.image_url is None
    assert page.site_name is None
    assert page.lang is None


def test_twitter_image_when_no_og_image() -> None:
    html = b'<meta name="twitter:image" content="pic.png"><p>x</p>'
    page = extract_page(html, url="https://example.com/dir/page")
    assert page.image_url == "https://example.com/dir/pic.png"


def test_base_href_resolves_relative_urls() -> None:
    html = b"""<html><head><base href="https://static.example.com/assets/">
        <meta property="og:image" content="img/a.png"></head>
        <body><a href="doc.html">Doc</a><a href="/root">Root</a></body></html>"""
    page = extract_page(html, url="https://example.com/page")
    assert page.image_url == "https://static.example.com/assets/img/a.png"
    assert [link.href for link in page.links] == [
        "https://static.example.com/assets/doc.html",
        "https://static.example.com/root",
    ]


def test_relative_base_href_and_unusable_base() -> None:
    relative = b'<base href="/sub/"><a href="x">x</a>'
    assert extract_page(relative, url="https://example.com/a/b").links[0].href == (
        "https://example.com/sub/x"
    )
    unusable = b'<base href="javascript:alert(1)"><a href="x">x</a>'
    assert extract_page(unusable, url="https://example.com/a/b").links[0].href == (
        "https://example.com/a/x"
    )


def test_image_that_is_not_http_is_dropped() -> None:
    for image in ("data:image/png;base64,AAAA", "javascript:alert(1)", "http://[broken/x.png"):
        html = f'<meta property="og:image" content="{image}">'.encode()
        assert extract_page(html, url=URL).image_url is None


def test_windows_1251_from_meta_charset() -> None:
    html = '<html><head><meta charset="windows-1251"><title>Новости дня</title></head>'
    html += "<body><p>Привет, мир!</p></body></html>"
    page = extract_page(html.encode("windows-1251"), url=URL)
    assert page.title == "Новости дня"
    assert page.text == "Привет, мир!"


def test_iso_8859_1_from_http_equiv() -> None:
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        "<title>Café crème</title></head><body>Smörgåsbord \u2013 \u201cquoted\u201d</body></html>"
    )
    # Like browsers, ISO-8859-1 is read as its superset windows-1252 (the dash and quotes).
    page = extract_page(html.encode("cp1252"), url=URL)
    assert page.title == "Café crème"
    assert page.text == "Smörgåsbord \u2013 \u201cquoted\u201d"


def test_header_charset_wins_over_meta() -> None:
    html = '<meta charset="utf-8"><title>Ελληνικά</title>'.encode("iso-8859-7")
    page = extract_page(html, url=URL, headers={"Content-Type": 'text/html; charset="iso-8859-7"'})
    assert page.title == "Ελληνικά"


def test_unknown_charsets_fall_back_to_utf8() -> None:
    html = '<meta charset="no-such-charset"><title>naïve</title>'.encode()
    assert extract_page(html, url=URL).title == "naïve"
    for charset in ("base64", "rot13", "unicode_escape", "undefined", "utf-7", "idna"):
        page = extract_page(
            html, url=URL, headers={"content-type": f"text/html; charset={charset}"}
        )
        assert page.title == "naïve"


def test_byte_order_mark_wins() -> None:
    html = "\ufeff<title>Über</title>".encode("utf-16-le")
    page = extract_page(html, url=URL, headers={"content-type": "text/html; charset=latin1"})
    assert page.title == "Über"


def test_invalid_utf8_is_replaced() -> None:
    page = extract_page(b"<title>caf\xe9 \xff\xfe</title><p>ok\x00</p>", url=URL)
    assert page.title is not None
    assert page.title.startswith("caf\ufffd")
    assert "\x00" not in page.text


def test_caps_and_dedupes() -> None:
    long_title = "T" * 1000
    long_description = "D" * 5000
    anchors = "".join(
        f'<a href="/p{i}">{"word " * 100}</a><a href="/p{i}">dup</a>' for i in range(1500)
    )
    html = (
        f'<title>{long_title}</title><meta name="description" content="{long_description}">'
        f"<p>{'text ' * 30000}</p>{anchors}"
    )
    page = extract_page(html.encode(), url=URL)
    assert page.title == "T" * MAX_TITLE
    assert page.description == "D" * MAX_DESCRIPTION
    assert len(page.text) <= MAX_TEXT
    assert len(page.links) == MAX_LINKS
    assert len({link.href for link in page.links}) == MAX_LINKS
    assert all(len(link.text) <= MAX_LINK_TEXT for link in page.links)
    assert page.links[0] == Link("https://news.example.com/p0", ("word " * 40).strip())


def test_empty_and_garbage_documents() -> None:
    assert extract_page(b"", url=URL) == ExtractedPage(None, None, None, None, None, "", [])
    page = extract_page(b"\x00\x01\x02<<<>>>&&&;;", url="not a url")
    assert page.links == []


def test_relative_links_without_a_usable_page_url_are_dropped() -> None:
    page = extract_page(b'<a href="/x">x</a><a href="https://ok.example/">ok</a>', url="")
    assert page.links == [Link("https://ok.example/", "ok")]


# -- properties ---------------------------------------------------------------------------

TAGS = [
    "html",
    "head",
    "body",
    "title",
    "meta",
    "base",
    "a",
    "p",
    "script",
    "style",
    "noscript",
    "template",
    "div",
    "svg",
    "iframe",
    "br",
    "img",
]
ATTRS = ["href", "content", "property", "name", "charset", "lang", "http-equiv", "src"]
ATTR_VALUES = st.one_of(
    st.sampled_from(
        [
            "og:title",
            "og:image",
            "og:description",
            "description",
            "og:site_name",
            "utf-16",
            "windows-1251",
            "text/html; charset=koi8-r",
            "javascript:x",
            "#x",
            "//h/x",
            "http://[::1",
            "https://a.example/b",
            "../../x",
            "\x00",
            "mailto:x",
        ]
    ),
    st.text(max_size=30),
)


@st.composite
def html_documents(draw: st.DrawFn) -> str:
    """Tag soup made of the tags and attributes the extractor looks at."""
    pieces: list[str] = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            tag = draw(st.sampled_from(TAGS))
            attrs = draw(st.lists(st.tuples(st.sampled_from(ATTRS), ATTR_VALUES), max_size=3))
            rendered = "".join(f' {k}="{v}"' for k, v in attrs)
            pieces.append(f"<{tag}{rendered}>")
        elif kind == 1:
            pieces.append(f"</{draw(st.sampled_from(TAGS))}>")
        elif kind == 2:
            pieces.append(draw(st.text(max_size=40)))
        else:
            pieces.append(
                draw(
                    st.sampled_from(
                        [
                            "<!--",
                            "-->",
                            "<![CDATA[",
                            "&amp;",
                            "&#0;",
                            "&#xD800;",
                            "<",
                            ">",
                            '"',
                            "'",
                            "\ufeff",
                        ]
                    )
                )
            )
    return "".join(pieces)


HEADERS = st.dictionaries(
    st.one_of(st.just("Content-Type"), st.just("content-type"), st.text(max_size=15)),
    st.one_of(
        st.text(max_size=60),
        st.builds(lambda c: f"text/html; charset={c}", st.text(max_size=20)),
        st.sampled_from(["text/html; charset=", "charset=utf-16", 'x; charset="', ";;;="]),
    ),
    max_size=3,
)
URLS = st.one_of(
    st.sampled_from([URL, "", "http://[::1]:80/", "https://h/%zz", "file:///etc/passwd"]),
    st.text(max_size=40),
    st.builds(lambda s: "https://example.com/" + s, st.text(max_size=20)),
)
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "utf-16-be", "cp1251", "latin-1", "shift_jis"])


def assert_well_formed(page: ExtractedPage) -> None:
    for value, limit in (
        (page.title, MAX_TITLE),
        (page.description, MAX_DESCRIPTION),
        (page.site_name, 300),
        (page.lang, 35),
        (page.image_url, 2048),
    ):
        if value is not None:
            assert value
            assert value == value.strip()
            assert len(value) <= limit
            assert "\x00" not in value
    assert len(page.text) <= MAX_TEXT
    assert page.text == page.text.strip()
    assert "\x00" not in page.text
    assert len(page.links) <= MAX_LINKS
    assert len({link.href for link in page.links}) == len(page.links)
    for link in page.links:
        assert link.href.startswith(("http://", "https://"))
        assert len(link.text) <= MAX_LINK_TEXT
        assert link.text == link.text.strip()
    if page.image_url is not None:
        assert page.image_url.startswith(("http://", "https://"))
    # Every string must survive UTF-8 encoding (no lone surrogates) for the database.
    for value in (page.title, page.description, page.site_name, page.lang, page.text):
        if value is not None:
            value.encode("utf-8")


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(body=st.binary(max_size=4096), url=URLS, headers=st.one_of(st.none(), HEADERS))
def test_never_raises_on_arbitrary_bytes(
    body: bytes, url: str, headers: dict[str, str] | None
) -> None:
    assert_well_formed(extract_page(body, url=url, headers=headers))


@FAST
@given(text=st.text(max_size=2000), encoding=ENCODINGS, headers=st.one_of(st.none(), HEADERS))
def test_never_raises_on_arbitrary_text(
    text: str, encoding: str, headers: dict[str, str] | None
) -> None:
    body = text.encode(
        encoding, errors="surrogatepass" if encoding.startswith("utf") else "replace"
    )
    assert_well_formed(extract_page(body, url=URL, headers=headers))


@FAST
@given(
    document=html_documents(), url=URLS, headers=st.one_of(st.none(), HEADERS), encoding=ENCODINGS
)
def test_never_raises_on_tag_soup(
    document: str, url: str, headers: dict[str, str] | None, encoding: str
) -> None:
    body = (
        document.encode(encoding, errors="replace")
        if encoding != "utf-8"
        else (document.encode("utf-8", errors="surrogatepass"))
    )
    assert_well_formed(extract_page(body, url=url, headers=headers))


@FAST
@given(title=st.text(alphabet=string.printable + "äßЖ中\u00a0\u2028", max_size=500))
def test_title_is_cleaned_text(title: str) -> None:
    html = "<title>" + title.replace("<", "").replace("&", "") + "</title>"
    page = extract_page(html.encode(), url=URL)
    expected = " ".join(title.replace("<", "").replace("&", "").split())[:MAX_TITLE].strip()
    assert page.title == (expected or None)


# -- the shortcuts taken for speed give the same answers as the slow paths ---------------

BASES = st.sampled_from(
    [
        URL,
        "https://example.com",
        "https://example.com/",
        "http://example.com:8080/a/b/?q=1#f",
        "https://user@example.com/dir/",
        "https://[2001:db8::1]/x/y",
        "not a url",
        "file:///etc/passwd",
    ]
)
HREF_PIECES = st.sampled_from(
    ["/", "//", ".", "..", "./", "../", "?", "#", "a", "b.html", ":", "http:", "https:",
     "HTTP:", "example.org", "\\", "%2e", " ", "@", "x=1", "&", "javascript:", "mailto:"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(base=BASES, pieces=st.lists(HREF_PIECES, min_size=1, max_size=8))
def test_quick_url_join_matches_urljoin(base: str, pieces: list[str]) -> None:
    href = "".join(pieces)
    quick = _Base.of(base).join(href)
    if quick is not None:
        assert quick[0] == urljoin(base, href)
    # And the public helper agrees with or without the shortcut.
    assert _absolute_url(href, base, _Base.of(base)) == _absolute_url(href, base)


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.text(alphabet="ab \n\t\x00\x01·", max_size=12), max_size=50),
    repeat=st.integers(1, 3000),
)
def test_visible_text_matches_collapsing_everything(words: list[str], repeat: int) -> None:
    raw = "".join(words) * repeat
    assert _visible_text(raw) == _collapse(raw)[:MAX_TEXT].rstrip()


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(
        alphabet="ab \n\t\r\x00\x01\x08\x0b\x0c\x0e\x1b\x1c\x1f\x7f\x85·é\u00a0\u200bЖ中",
        max_size=60,
    )
)
def test_collapse_replaces_controls_and_whitespace_runs_by_one_space(text: str) -> None:
    assert _collapse(text) == _collapsed_slowly(text)


@pytest.mark.parametrize("wide", ["", "Ж"])
def test_collapse_treats_every_latin1_character_as_str_split_does(wide: str) -> None:
    # Latin-1 text takes a byte path, any other text the str path: both must agree with the
    # definition for each of the 256 characters.
    for code in range(256):
        text = f" a{chr(code)}{chr(code)}b {wide}"
        assert _collapse(text) == _collapsed_slowly(text), hex(code)


def _collapsed_slowly(text: str) -> str:
    """The definition: control characters become spaces, then whitespace runs collapse."""
    return " ".join("".join(" " if _CONTROL.match(c) else c for c in text).split())
