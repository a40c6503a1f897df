// The parse-job panel (submit a URL, watch `job.updated` progress, list past jobs) and the
// view of a stored page.

import { api, enc } from "./api.js";
import { $, el, externalLink, showError, timeEl } from "./dom.js";
import { soon, startSnapshot, state } from "./state.js";
import { pageHref } from "./views.js";

const JOBS_PAGE_SIZE = 20;
const PAGE_TEXT_SHOWN = 20_000;
const reloadJobsSoon = soon(() => loadJobs());

/** Fetch the newest jobs (or, with `more`, the next older page) and show them. */
export async function loadJobs({ more = false } = {}) {
  try {
    const snapshot = more ? null : startSnapshot("jobs");
    const page = await api("jobs", { params: { limit: JOBS_PAGE_SIZE, cursor: more ? state.jobsCursor : null } });
    if (snapshot && !snapshot.isLatest()) return;
    if (!more) state.jobs.clear();
    for (const job of page.items) state.jobs.set(job.id, job);
    state.jobsCursor = page.nextCursor;
    state.jobsLoaded = true;
    renderJobList();
    if (snapshot && snapshot.missedChanges()) reloadJobsSoon();
  } catch (err) {
    showError("job-error", err);
  }
}

/** `job.updated` (and our own submissions): redraw that job where it is. */
export function onJobUpdated(job) {
  const known = state.jobs.has(job.id);
  state.jobs.set(job.id, job);
  const old = $("job-list").querySelector(`[data-job-id="${CSS.escape(String(job.id))}"]`);
  if (old) old.replaceWith(jobNode(job));
  else if (state.jobsLoaded || !known) renderJobList();
}

function renderJobList() {
  const jobs = [...state.jobs.values()].sort((a, b) => b.id - a.id);
  $("job-list").replaceChildren(...jobs.map(jobNode));
  $("job-list-empty").hidden = jobs.length > 0;
  $("load-older-jobs").hidden = !state.jobsCursor;
}

function jobNode(job) {
  const statusId = `job-${job.id}-status`;
  return el(
    "li",
    { class: "job", dataset: { jobId: job.id, status: job.status } },
    el("div", { class: "job-url" }, externalLink(job.url, job.url)),
    el(
      "div",
      { class: "job-state" },
      el("span", { class: "job-status", id: statusId }, job.status),
      el("progress", { max: "100", value: String(job.progress), "aria-labelledby": statusId }),
      el("span", { class: "job-percent" }, `${job.progress}%`),
      timeEl(job.createdAt, { class: "job-time" }),
    ),
    job.error ? el("p", { class: "job-error" }, job.error) : null,
    el(
      "div",
      { class: "job-actions" },
      job.pageId != null ? el("a", { class: "open-page", href: pageHref(job.pageId) }, "Open page") : null,
      job.status === "queued"
        ? el("button", { type: "button", class: "small", dataset: { action: "cancel-job" } }, "Cancel")
        : null,
    ),
  );
}

/** Ask for the form's URL to be fetched and parsed. */
export async function submitJob(event) {
  event.preventDefault();
  showError("job-error", null);
  const input = $("job-url");
  const url = input.value.trim();
  if (!url) return;
  try {
    const job = await api("jobs/parse", { method: "POST", json: { url } });
    input.value = "";
    // Its `job.updated` events may have overtaken this answer: never show an older state.
    if (!state.jobs.has(job.id)) onJobUpdated(job);
  } catch (err) {
    showError("job-error", err);
  }
}

/** The job list's buttons (cancel a queued job). */
export async function onJobAction(event) {
  const button = event.target.closest('button[data-action="cancel-job"]');
  if (!button) return;
  const jobId = Number(button.closest(".job").dataset.jobId);
  showError("job-error", null);
  try {
    await api(`jobs/${enc(jobId)}`, { method: "DELETE" });
    const job = await api(`jobs/${enc(jobId)}`);
    onJobUpdated(job);
  } catch (err) {
    showError("job-error", err);
  }
}

// ---------------------------------------------------------------- a stored page

/** Show the stored page `pageId`. */
export async function showStoredPage(pageId) {
  $("page-title").textContent = "Loading…";
  $("page-body").replaceChildren();
  showError("page-error", null);
  try {
    const page = await api(`pages/${enc(pageId)}`);
    renderStoredPage(page);
  } catch (err) {
    $("page-title").textContent = "Page not available";
    showError("page-error", err);
  }
}

function fact(term, value) {
  return value == null || value === "" ? null : [el("dt", {}, term), el("dd", {}, value)];
}

function renderStoredPage(page) {
  $("page-title").textContent = page.title || page.finalUrl || page.url;
  const text = page.text || "";
  const links = (page.links || []).filter((link) => link.href);
  $("page-body").replaceChildren(
    page.description ? el("p", { class: "page-description" }, page.description) : null,
    el(
      "dl",
      { class: "facts" },
      fact("Address", externalLink(page.finalUrl || page.url, page.finalUrl || page.url)),
      fact("Site", page.siteName),
      fact("Status", page.statusCode),
      fact("Type", page.contentType),
      fact("Language", page.lang),
      fact("Fetched", timeEl(page.fetchedAt)),
    ),
    el("h3", {}, "Text"),
    el("div", { class: "page-text" }, text.length > PAGE_TEXT_SHOWN ? `${text.slice(0, PAGE_TEXT_SHOWN)}…` : text || "(no text)"),
    el("h3", {}, `Links (${links.length})`),
    links.length
      ? el("ul", { class: "page-links" }, links.map((link) => el("li", {}, externalLink(link.href, link.text || link.href))))
      : el("p", { class: "empty" }, "No links."),
  );
}
