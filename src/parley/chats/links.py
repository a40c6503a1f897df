"""The links in a message's text: which http(s) URLs it names, for their previews."""

from __future__ import annotations

import re

from parley.parser import is_web_url

MAX_PREVIEWS = 5

# A URL runs until whitespace or a character that cannot appear unescaped in one; its host
# may be an IPv6 literal in brackets (RFC 3986), the only place brackets may appear.
_URL_IN_TEXT = re.compile(
    r"""https?://(?:\[[0-9a-f:.]+\](?::\d+)?(?:[/?#][^\s<>"'`{}|\\^\[\]]*)?"""
    r"""|[^\s<>"'`{}|\\^\[\]]+)""",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?*'\"~_-"
_PAIRS = {")": "(", "]": "[", "}": "{"}


def find_urls(text: str, limit: int = MAX_PREVIEWS) -> list[str]:
    """The first `limit` distinct http(s) URLs in `text`, in order of appearance.

    Punctuation that ends a sentence is not part of a URL, nor is a closing bracket that
    has no opening one inside the URL ("(see https://example.com)").
    """
    found: list[str] = []
    for match in _URL_IN_TEXT.finditer(text):
        url = _trim(match.group(0))
        if url not in found and is_web_url(url):
            found.append(url)
            if len(found) == limit:
                break
    return found


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        unbalanced = last in _PAIRS and url.count(last) > url.count(_PAIRS[last])
        if last in _TRAILING or unbalanced:
            url = url[:-1]
        else:
            break
    return url
