"""Pure parts: finding URLs in text, and the retry backoff."""

from __future__ import annotations

import pytest

from parley.chats.links import find_urls
from parley.parser import is_web_url
from parley.worker import JobLimits
from tests.fixtures.apps import make_settings

pytestmark = pytest.mark.mode_independent


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("see https://example.com/a.", ["https://example.com/a"]),
        ("(see https://example.com/a)", ["https://example.com/a"]),
        ("https://en.wikipedia.org/wiki/Foo_(bar)!", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("a http://x.org/?q=1&r=2, b", ["http://x.org/?q=1&r=2"]),
        ("<https://example.com/x>", ["https://example.com/x"]),
        ("HTTPS://Example.com/X", ["HTTPS://Example.com/X"]),
        ("ftp://example.com/ mailto:a@b.c javascript:alert(1)", []),
        ("http:// nothing https:///nohost", []),
        ("dup http://a.org http://a.org http://b.org", ["http://a.org", "http://b.org"]),
        ("http://user:pw@example.com/", []),
    ],
)
def test_find_urls(text: str, urls: list[str]) -> None:
    assert find_urls(text) == urls


def test_find_urls_keeps_the_first_five() -> None:
    text = " ".join(f"http://h{i}.example/" for i in range(8))
    assert find_urls(text) == [f"http://h{i}.example/" for i in range(5)]


def test_is_web_url_refuses_long_and_odd_urls() -> None:
    assert is_web_url("https://example.com/" + "a" * 2000)
    assert not is_web_url("https://example.com/" + "a" * 2100)
    assert not is_web_url("https://example.com/a b")
    assert not is_web_url("https://example.com:70000/")


def test_retry_delay_grows_with_jitter_and_is_capped() -> None:
    limits = JobLimits.from_settings(
        make_settings(
            "sqlite+aiosqlite:///unused.db",
            None,
            job_retry_backoff_seconds=1,
            job_retry_backoff_max_seconds=8,
        )
    )
    for attempt, full in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = [limits.retry_delay(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_limits_keep_the_visibility_timeout_above_the_time_limit() -> None:
    limits = JobLimits.from_settings(
        make_settings(
            "sqlite+aiosqlite:///unused.db",
            None,
            job_time_limit_seconds=100,
            broker_visibility_timeout_seconds=30,
        )
    )
    assert limits.visibility_timeout > limits.time_limit > limits.soft_time_limit
    assert limits.soft_time_limit > limits.work_timeout
    assert limits.eta_hold <= limits.visibility_timeout / 2
    assert limits.abandoned_after >= 3 * limits.heartbeat
