"""Turn an HTML document into the fields of a Page: a pure function, no I/O."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

MAX_TITLE = 300
MAX_DESCRIPTION = 1000
MAX_SITE_NAME = 300
MAX_LANG = 35
MAX_URL = 2048
MAX_TEXT = 100_000
MAX_LINK_TEXT = 200
MAX_LINKS = 1000

_SNIFF_BYTES = 2048
_INVISIBLE_TAGS = ["script", "style", "noscript", "template", "iframe"]
_WEB_SCHEMES = ("http", "https")

# Control characters that str.split() does not count as whitespace. They become spaces:
# PostgreSQL text cannot even hold NUL. (str.translate would be slow on non-ASCII text.)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
# Latin-1's control characters (as _CONTROL) and the whitespace str.split() knows beyond
# ASCII's (\x1c-\x1f, NEL, NBSP), all mapped to a space.
_LATIN1_SPACES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F, 0x85, 0xA0])
_LATIN1_TO_SPACE = bytes.maketrans(_LATIN1_SPACES, b" " * len(_LATIN1_SPACES))
_URL_NOISE = re.compile(r"[\t\n\r]")
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.+\-]+)""", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# WHATWG treats these labels as windows-1252, a superset of what they name.
_WINDOWS_1252_LABELS = frozenset(
    {"ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp819"}
)
# Python codecs that are not web character encodings, or that can produce lone surrogates.
_REFUSED_CODECS = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "utf-7", "undefined"}
)


class Link(NamedTuple):
    """An absolute http(s) link and its text (whitespace collapsed, at most 200 chars).

    A named tuple: a page has hundreds, and a frozen dataclass costs three times as much
    to make.
    """

    href: str
    text: str


@dataclass(frozen=True)
class ExtractedPage:
    """What a page says about itself; every string is stripped and length-capped."""

    title: str | None
    description: str | None
    image_url: str | None
    site_name: str | None
    lang: str | None
    text: str
    links: list[Link]


def extract_page(
    body: bytes, *, url: str, headers: Mapping[str, str] | None = None
) -> ExtractedPage:
    """Extract title, description, image, site name, language, text and links from HTML.

    ``url`` is the page's final URL, against which (and the page's ``<base href>``)
    relative URLs are resolved; ``headers`` may carry the Content-Type charset. Never
    raises on any input: missing fields are None, undecodable bytes become U+FFFD.
    Titles are capped at 300 chars, descriptions at 1000, text at 100,000; at most 1000
    distinct absolute http(s) links are kept, in document order.
    """
    text = _decode(body, headers)
    # Feed lexbor UTF-8 bytes ourselves: "replace" also drops lone surrogates.
    tree = LexborHTMLParser(text.encode("utf-8", errors="replace"), scripting=True)

    metas = _meta_values(tree)
    base = _base_url(tree, url)
    title = metas.get("og:title") or _node_text(tree.css_first("title"))
    image = metas.get("og:image") or metas.get("og:image:url") or metas.get("twitter:image")
    root = tree.root
    lang = (root.attributes.get("lang") or root.attributes.get("xml:lang")) if root else None

    tree.strip_tags(_INVISIBLE_TAGS, recursive=True)
    return ExtractedPage(
        title=_clean(title, MAX_TITLE),
        description=_clean(
            metas.get("og:description") or metas.get("description"), MAX_DESCRIPTION
        ),
        image_url=_absolute_url(image, base.url) if image else None,
        site_name=_clean(metas.get("og:site_name"), MAX_SITE_NAME),
        lang=_clean(lang, MAX_LANG),
        text=_visible_text(tree.body.text(separator=" ") if tree.body else ""),
        links=_links(tree, base),
    )


def _decode(body: bytes, headers: Mapping[str, str] | None) -> str:
    try:
        return body.decode(_choose_encoding(body, headers), errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):  # a codec that misbehaves
        return body.decode("utf-8", errors="replace")


def _choose_encoding(body: bytes, headers: Mapping[str, str] | None) -> str:
    """BOM, then the Content-Type charset, then a <meta> in the first 2 KiB, else UTF-8."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    for key, value in (headers or {}).items():
        if isinstance(key, str) and key.lower() == "content-type" and isinstance(value, str):
            declared = _CHARSET_PARAM.search(value)
            header_codec = _codec_for(declared.group(1)) if declared else None
            if header_codec:
                return header_codec
    sniffed = _META_CHARSET.search(body[:_SNIFF_BYTES])
    meta_codec = _codec_for(sniffed.group(1).decode("ascii", errors="replace")) if sniffed else None
    # A document that could be read to find its <meta> is not UTF-16 (WHATWG rule).
    if meta_codec and not meta_codec.startswith("utf-16"):
        return meta_codec
    return "utf-8"


def _codec_for(label: str) -> str | None:
    """The Python codec name for a web charset label, or None if unknown or unsafe."""
    label = label.strip().strip("\"'").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return None if info.name.replace("_", "-") in _REFUSED_CODECS else info.name


def _meta_values(tree: LexborHTMLParser) -> dict[str, str]:
    """The first non-empty content of each <meta property|name>, keyed in lower case."""
    values: dict[str, str] = {}
    for meta in tree.css("meta[content]"):
        attrs = meta.attributes
        content = (attrs.get("content") or "").strip()
        if not content:
            continue
        for key in (attrs.get("property"), attrs.get("name")):
            if key:
                values.setdefault(key.strip().lower(), content)
    return values


def _base_url(tree: LexborHTMLParser, url: str) -> _Base:
    """What relative references resolve against: <base href> if usable, else ``url``."""
    base = tree.css_first("base[href]")
    href = base.attributes.get("href") if base else None
    resolved = _absolute_url(href, url) if href else None
    return _Base.of(resolved or url)


def _links(tree: LexborHTMLParser, base: _Base) -> list[Link]:
    links: list[Link] = []
    seen: set[str] = set()
    hrefs_seen: set[str] = set()  # the same href resolves to the same URL: once is enough
    for anchor in tree.css("a[href]"):
        href = (anchor.attributes.get("href") or "").strip()
        if not href or href[0] == "#" or href in hrefs_seen:
            continue
        hrefs_seen.add(href)
        absolute = _absolute_url(href, base.url, base)
        if absolute is None or absolute in seen:
            continue
        seen.add(absolute)
        text = _collapse(anchor.text(separator=" "))[:MAX_LINK_TEXT].rstrip()
        links.append(Link(absolute, text))
        if len(links) >= MAX_LINKS:
            break
    return links


def _absolute_url(href: str, base_url: str, base: _Base | None = None) -> str | None:
    """``href`` resolved against ``base_url`` if that gives a usable http(s) URL, else None.

    ``base``, the same URL prepared by :meth:`_Base.of`, makes common hrefs cheap.
    """
    href = href.strip()
    if _has_control(href):
        href = _URL_NOISE.sub("", href)  # browsers drop tabs and newlines inside URLs
        if _URL_CONTROL.search(href):
            return None
    if not href or len(href) > MAX_URL:
        return None
    joined = base.join(href) if base is not None else None
    if joined is not None and joined[1]:
        return joined[0] if len(joined[0]) <= MAX_URL else None
    try:
        absolute = joined[0] if joined is not None else urljoin(base_url, href)
        parts = urlsplit(absolute)
        if parts.scheme not in _WEB_SCHEMES or not parts.hostname:
            return None
    except ValueError:
        return None
    if len(absolute) > MAX_URL or _has_control(absolute):
        return None
    return absolute


def _has_control(value: str) -> bool:
    """Whether ``value`` holds a C0 control character or DEL (what URLs must not hold).

    ``isprintable`` answers for most strings in C; only one it calls unprintable for some
    other reason (a non-ASCII space or format character) needs the regular expression.
    """
    return not value.isprintable() and _URL_CONTROL.search(value) is not None


@dataclass(frozen=True)
class _Base:
    """A base URL, with what :meth:`join` needs to resolve common hrefs quickly."""

    url: str
    scheme: str | None = None  # None unless the base is an http(s) URL with a host
    origin: str = ""
    directory: str = "/"

    @classmethod
    def of(cls, url: str) -> _Base:
        try:
            parts = urlsplit(url)
            if parts.scheme not in _WEB_SCHEMES or not parts.hostname:
                return cls(url)
        except ValueError:
            return cls(url)
        if _URL_CONTROL.search(url):
            return cls(url)
        directory = parts.path[: parts.path.rfind("/") + 1] or "/"
        return cls(url, parts.scheme, f"{parts.scheme}://{parts.netloc}", directory)

    def join(self, href: str) -> tuple[str, bool] | None:
        """``urljoin(self.url, href)`` for the common shapes of href, else None.

        urljoin costs tens of microseconds, which adds up over a thousand links. The
        shapes handled are absolute http(s), protocol-relative, root-relative and plain
        relative paths without dot segments or empty query/fragment markers. The flag says
        whether the result is known to be a usable URL (it keeps this base's host).
        """
        if self.scheme is None or not href or href[0] <= " " or _has_control(href):
            return None  # urljoin would strip or drop these characters first
        before_fragment, hashmark, fragment = href.partition("#")
        path, questionmark, query = before_fragment.partition("?")
        if (hashmark and not fragment) or (questionmark and not query):
            return None  # urljoin drops empty markers
        if href.startswith(("http://", "https://")):
            authority = href[href.index("//") + 2 :][:1]
            return (href, False) if authority not in ("", "/", "?", "#", "\\") else None
        if path.startswith("//"):
            return (f"{self.scheme}:{href}", False) if path[2:3] not in ("", "/") else None
        if "./" in path or path.endswith(".") or "//" in path or "\\" in href:
            return None  # dot segments and empty segments get urljoin's normalisation
        if path.startswith("/"):
            return self.origin + href, True
        if not path or ":" in path.partition("/")[0]:
            return None  # a query- or fragment-only href, or one with a scheme
        return self.origin + self.directory + href, True


def _visible_text(raw: str) -> str:
    """``_collapse(raw)[:MAX_TEXT]``, without collapsing more of a long text than needed.

    Collapsing a prefix of ``raw`` gives a prefix of the collapsed whole, so once a prefix
    collapses to more than MAX_TEXT characters, the rest cannot change the result.
    """
    window = MAX_TEXT + MAX_TEXT // 4
    while True:
        collapsed = _collapse(raw[:window])
        if len(collapsed) > MAX_TEXT or window >= len(raw):
            return collapsed[:MAX_TEXT].rstrip()
        window *= 2


def _node_text(node: LexborNode | None) -> str | None:
    return node.text() if node is not None else None


def _collapse(value: str) -> str:
    """Whitespace runs and control characters become single spaces; the ends are stripped."""
    try:
        data = value.encode("latin-1")
    except UnicodeEncodeError:
        collapsed = " ".join(value.split())
        if _CONTROL.search(collapsed):  # shorter once collapsed; replaced after, same result
            collapsed = " ".join(_CONTROL.sub(" ", collapsed).split())
        return collapsed
    # Most web text fits in Latin-1 (a long page's text, ~100,000 characters, in ~1 ms less
    # than as str): one byte translation turns every whitespace character str.split() knows
    # and every control character into a space, then bytes split on ASCII whitespace.
    return b" ".join(data.translate(_LATIN1_TO_SPACE).split()).decode("latin-1")


def _clean(value: str | None, limit: int) -> str | None:
    """Collapse whitespace, strip and cap; None for nothing left."""
    if not value:
        return None
    cleaned = _collapse(value)[:limit].rstrip()
    return cleaned or None
