// REST calls: the cookie session, its CSRF header on writes, errors people can read, and
// whether the server can be reached at all. Every URL is relative to the document, so the
// page works under a path prefix.

const credentials = { csrf: null };
const hooks = { reachable: () => {}, unreachable: () => {}, sessionEnded: () => {} };
// Requests are numbered as they are sent, and what one's outcome says about the network
// holds only if nothing sent later said otherwise: a reply to a request sent before the
// last failure does not clear that failure's error (it may have been answered after the
// network went away), and the failure of a request sent before the server was last
// reached does not raise one (it may have failed after the network came back).
const sent = { count: 0, failedAfter: 0, reachedAfter: 0 };

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status; // 0: the server could not be reached
    this.detail = detail;
  }
}

/** Use `token` as the X-CSRF-Token of writes (null: signed out). */
export function setCsrfToken(token) {
  credentials.csrf = token;
}

/**
 * Tell the page when a request reached the server (`reachable`), when one could not
 * (`unreachable`), and when the session ended under it (a 401 outside /auth).
 */
export function setApiHooks(next) {
  Object.assign(hooks, next);
}

/** The server was reached some other way (the live socket opened): older failures are old. */
export function markServerReached() {
  sent.reachedAfter = sent.count;
}

/** The absolute URL of `path` under the API. */
export function apiUrl(path) {
  return new URL(`api/v1/${path}`, document.baseURI);
}

function detailText(body, fallback) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  return fallback;
}

// Parley never answers 502 or 504 itself: those come from a proxy that could not reach it or
// gave up waiting (ours answers them with a JSON detail of its own), and say what a failed
// fetch says. A 503 is Parley's own when it has a JSON body (a dependency is down: the
// server answered); without one it is a proxy's or a load balancer's. After a 504 the request
// may still have been carried out: sends carry a clientId, so retrying them is safe.
const GATEWAY_STATUSES = new Set([502, 504]);

/** Note that the request numbered `number` did not reach the server; the error to throw. */
function unreachable(number) {
  if (number > sent.reachedAfter) {
    sent.failedAfter = sent.count;
    hooks.unreachable();
  }
  return new ApiError(0, "Cannot reach the server.");
}

function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    return null;
  }
}

function isObject(data) {
  return data !== null && typeof data === "object" && !Array.isArray(data);
}

/** Call the API; the parsed JSON body (null when empty); throws ApiError. */
export async function api(path, { method = "GET", json, form, params } = {}) {
  const url = apiUrl(path);
  if (params) for (const [k, v] of Object.entries(params)) if (v != null) url.searchParams.set(k, v);
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = new URLSearchParams(form);
  }
  if (method !== "GET" && credentials.csrf) headers["X-CSRF-Token"] = credentials.csrf;
  const number = ++sent.count;
  let response;
  let text;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin", cache: "no-store" });
    text = await response.text(); // a body cut off midway fails here, as a lost network does
  } catch (err) {
    throw unreachable(number);
  }
  const data = parseJson(text);
  const viaProxy = GATEWAY_STATUSES.has(response.status) || (response.status === 503 && !isObject(data));
  if (viaProxy) throw unreachable(number);
  if (number > sent.failedAfter) {
    sent.reachedAfter = Math.max(sent.reachedAfter, number);
    hooks.reachable();
  }
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith("auth/")) hooks.sessionEnded();
    throw new ApiError(response.status, detailText(data, response.statusText || `error ${response.status}`));
  }
  return data;
}

/** `encodeURIComponent` for an id in a path. */
export const enc = (id) => encodeURIComponent(String(id));
