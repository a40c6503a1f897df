"""`parley client parse`: a server-side fetch-and-parse job, followed to its page."""

from __future__ import annotations

import json

import pytest

from tests.client.harness import ClientUser, web_site

pytestmark = pytest.mark.timeout(300)

PAGE = """<!doctype html><html lang="en"><head><title>Parley parse test</title>
<meta name="description" content="What the parser should find.">
<meta property="og:site_name" content="Test site"></head>
<body><p>Body text</p><a href="/next">next</a></body></html>"""


def test_parse_wait_prints_the_title_and_description(alice: ClientUser) -> None:
    with web_site({"/article.html": PAGE}) as site:
        url = f"{site}/article.html"
        result = alice.run("parse", url, "--wait")
        assert result.stdout.splitlines() == [
            "Parley parse test",
            "What the parser should find.",
            url,
        ]

        data = json.loads(alice.run("parse", url, "--wait", "--json").stdout)
        assert data["job"]["status"] == "succeeded"
        assert data["job"]["pageId"] == data["page"]["id"]
        assert data["page"]["siteName"] == "Test site"


def test_parse_without_wait_answers_with_the_queued_job(alice: ClientUser) -> None:
    with web_site({"/a.html": PAGE}) as site:
        job = json.loads(alice.run("parse", f"{site}/a.html", "--json").stdout)
        assert job["kind"] == "parse"
        assert job["url"] == f"{site}/a.html"
        assert job["status"] in {"queued", "running", "succeeded"}
        assert alice.run("parse", f"{site}/a.html").stdout.startswith("job ")


def test_a_failed_job_is_a_one_line_error(alice: ClientUser) -> None:
    with web_site({}) as site:
        result = alice.run("parse", f"{site}/missing.html", "--wait", check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("parley: job ")
    assert " failed: " in lines[0]

    invalid = alice.run("parse", "not a url", check=False)
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("parley: 422 ")
