"""How long extract_page takes on a realistic ~200 KiB article page.

Run: .venv/bin/python bench/extract.py [--runs 200]
Prints the page size and the mean, p50 and p99 time per page in milliseconds; the target
is under 20 ms per page.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from parley.parser import extract_page

URL = "https://news.example.com/world/2024/05/17/a-long-article.html"
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "an",
    "which",
    "are",
    "this",
    "be",
    "government",
    "council",
    "report",
    "market",
    "city",
    "river",
    "research",
    "energy",
    "water",
    "policy",
    "climate",
    "minister",
    "village",
    "election",
    "university",
    "hospital",
    "festival",
    "museum",
    "railway",
    "harbour",
]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _teaser(rng: random.Random, i: int) -> str:
    """A story card as news front pages repeat them: nested divs, image, spans, links."""
    return (
        f'<div class="card card--{i % 4}" data-id="{i}"><a class="card__link" '
        f'href="/story/{i}.html"><div class="card__media"><img loading="lazy" '
        f'src="/media/thumb/{i}.jpg" srcset="/media/thumb/{i}@2x.jpg 2x" alt="Photo {i}">'
        f'</div><div class="card__body"><span class="card__kicker">Section {i % 12}</span>'
        f'<h3 class="card__title">{_sentence(rng, 9)}</h3></div></a>'
        f'<p class="card__summary">{_sentence(rng, 18)}</p>'
        f'<span class="card__meta"><time datetime="2024-05-17T10:{i % 60:02d}:00Z">'
        f"17 May</time> · <a href='/author/{i % 30}/'>Author {i % 30}</a></span>"
        '<svg class="icon" viewBox="0 0 24 24"><path d="M12 2L2 7l10 5 10-5-10-5z"/></svg>'
        "</div>\n"
    )


def build_page(target_bytes: int = 200 * 1024, seed: int = 7) -> bytes:
    """A news article page of about ``target_bytes``, shaped like real ones.

    A heavy head (meta tags, inline CSS, an inline state script, JSON-LD), navigation,
    the article itself (about 40% of the bytes), markup-heavy story cards, and a footer.
    """
    rng = random.Random(seed)
    head = [
        '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Floods close the harbour as council meets | Example News</title>",
        '<meta name="description" content="' + _sentence(rng, 30) + '">',
        '<meta property="og:title" content="Floods close the harbour as council meets">',
        '<meta property="og:description" content="' + _sentence(rng, 40) + '">',
        '<meta property="og:image" content="/media/2024/05/harbour.jpg?w=1200">',
        '<meta property="og:site_name" content="Example News">',
        '<meta name="twitter:card" content="summary_large_image">',
        '<link rel="canonical" href="' + URL + '">',
        '<link rel="stylesheet" href="/static/site.css">',
        "<style>"
        + "".join(f".c{i}{{margin:{i}px;color:#{i:06x}}}" for i in range(300))
        + "</style>",
        '<script type="application/ld+json">{"@type":"NewsArticle","articleBody":"'
        + _sentence(rng, 800)
        + '"}</script>',
        '<script>window.__STATE__={"k":"' + "x" * 12000 + '"};</script>',
        "</head><body><header><nav><ul>",
    ]
    head += [f'<li><a href="/section/{i}/">Section {i}</a></li>' for i in range(40)]
    head.append("</ul></nav></header><main><article><h1>Floods close the harbour</h1>")
    tail = ["</aside></main><footer>"]
    tail += [f'<a href="https://partner{i}.example.org/">Partner {i}</a> ' for i in range(20)]
    tail.append('<script src="/static/app.js"></script><script>track("view");</script>')
    tail.append("</footer></body></html>")

    article: list[str] = []
    size = sum(len(part) for part in head + tail)
    paragraph = 0
    while size < target_bytes * 0.6:
        link = (
            f' See <a href="/related/{paragraph}.html">related <em>story</em></a>.'
            if paragraph % 3 == 0
            else ""
        )
        part = f"<p>{_sentence(rng, 50)}{link}</p>\n"
        article.append(part)
        size += len(part)
        paragraph += 1
    article.append('</article><aside class="more"><h2>More stories</h2>')
    cards = 0
    while size < target_bytes:
        part = _teaser(rng, cards)
        article.append(part)
        size += len(part)
        cards += 1
    return "".join(head + article + tail).encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    page = build_page()
    headers = {"content-type": "text/html; charset=utf-8"}
    extract_page(page, url=URL, headers=headers)  # warm up
    times: list[float] = []
    cpu_start = time.process_time()
    for _ in range(args.runs):
        start = time.perf_counter()
        result = extract_page(page, url=URL, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
    cpu_mean = (time.process_time() - cpu_start) * 1000 / args.runs
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    print(
        f"page: {len(page) / 1024:.0f} KiB, {len(result.text):,} chars of text, "
        f"{len(result.links)} links"
    )
    print(
        f"extract_page x{args.runs}: mean {statistics.fmean(times):.2f} ms, "
        f"p50 {statistics.median(times):.2f} ms, p99 {p99:.2f} ms (target < 20 ms); "
        f"CPU time {cpu_mean:.2f} ms per page"
    )


if __name__ == "__main__":
    main()
