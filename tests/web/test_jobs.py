"""The parse-job panel: submit a URL, watch `job.updated` progress live, open the stored
page, and find past jobs again after a reload. The pages come from a loopback server the
test runs itself (`/hold/<key>` answers only when the test releases it)."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.jobs.pageserver import running_page_server
from tests.web.conftest import Pages, WebServer
from tests.web.kit import assert_accessible_basics, person, sign_in

pytestmark = pytest.mark.timeout(120)


def test_parse_job_progress_live_and_the_stored_page(pages: Pages, web_server: WebServer) -> None:
    erin = person(web_server, "erin", "Erin")
    page = pages.new()
    pages.allow(r"status of 422 .*/api/v1/jobs/parse")  # the refused address below
    key = uuid.uuid4().hex[:8]
    with running_page_server() as site:
        sign_in(page, web_server, erin)
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Pages").click()
        expect(page.get_by_role("heading", name="Pages")).to_be_visible()
        expect(page.locator("#job-list-empty")).to_be_visible()
        assert_accessible_basics(page)
        field = page.get_by_label("Address of a web page to fetch and read")

        # The server refuses what is not a web address, in words.
        field.fill("ftp://example.org/file")
        page.get_by_role("button", name="Fetch").click()
        expect(page.locator("#job-error")).to_contain_text("http or https")

        # The page fetch waits on the test: the job is seen running before it finishes.
        url = site.url(f"/hold/{key}")
        field.fill(url)
        page.get_by_role("button", name="Fetch").click()
        expect(page.locator("#job-error")).to_have_text("")
        expect(field).to_have_value("")
        first = page.locator("#job-list > li.job").first
        expect(first.locator(".job-url")).to_have_text(url)
        job = page.locator(f'#job-list > li[data-job-id="{first.get_attribute("data-job-id")}"]')
        assert site.arrived(key).wait(30), "the worker fetched the page"
        expect(job.locator(".job-status")).to_have_text("running")
        expect(job.locator(".job-percent")).to_have_text("10%")
        expect(job.locator("progress")).to_have_attribute("value", "10")
        expect(job.get_by_role("link", name="Open page")).to_have_count(0)

        site.release(key)
        expect(job.locator(".job-status")).to_have_text("succeeded")
        expect(job.locator(".job-percent")).to_have_text("100%")
        expect(job).to_have_attribute("data-status", "succeeded")

        # A page that cannot be fetched fails the job with a reason.
        field.fill(site.url(f"/status/404/{key}"))
        page.get_by_role("button", name="Fetch").click()
        failed = page.locator("#job-list > li.job").first
        expect(failed.locator(".job-status")).to_have_text("failed")
        expect(failed.locator(".job-error")).to_contain_text("404")

        # The stored page, as the server parsed it.
        job.get_by_role("link", name="Open page").click()
        expect(page.locator("#page-title")).to_have_text(f"Page {key}")
        body = page.locator("#page-body")
        expect(body.locator(".page-description")).to_have_text(f"About {key}")
        expect(body.locator(".page-text")).to_contain_text(f"Hello {key}")
        expect(body.get_by_role("link", name="Next")).to_have_attribute(
            "href", site.url(f"/page/{key}-next")
        )
        expect(body.get_by_role("link", name="Elsewhere")).to_have_attribute(
            "href", "https://example.org/x"
        )
        expect(body).to_contain_text("Test site")

        # Past jobs are listed again after a reload, newest first; the stored page's address
        # is one that can be opened again.
        page_url = page.url
        page.get_by_role("link", name="← Pages").click()
        page.reload()
        expect(page.locator("#job-list > li.job")).to_have_count(2)
        expect(page.locator("#job-list > li.job .job-status")).to_have_text(["failed", "succeeded"])
        page.goto(page_url)
        expect(page.locator("#page-title")).to_have_text(f"Page {key}")
