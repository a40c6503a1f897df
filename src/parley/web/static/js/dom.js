// Small DOM helpers: building elements, safe links, times, error slots and announcements.

const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
const ANNOUNCEMENTS_KEPT = 5;

export const $ = (id) => document.getElementById(id);

/** An element with attributes (`class`, `dataset`, booleans, strings) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Make `node` look like `fresh`, keeping its own elements wherever the two agree (same tag
 * and class, in order) and changing only their attributes and text. A child that appears
 * or goes away between kept ones (an "edited" mark, a confirmation) does not displace its
 * neighbours. A click whose press and release straddle a redraw lands only if the pressed
 * element is still there. Listeners on kept elements stay as they were: for markup whose
 * behaviour is delegated.
 */
export function morph(node, fresh) {
  if (node.isEqualNode(fresh)) return;
  if (node.nodeType !== Node.ELEMENT_NODE) {
    node.nodeValue = fresh.nodeValue;
    return;
  }
  for (const { name } of [...node.attributes]) if (!fresh.hasAttribute(name)) node.removeAttribute(name);
  for (const { name, value } of fresh.attributes) if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  const mine = [...node.childNodes];
  const theirs = [...fresh.childNodes];
  let m = 0;
  let t = 0;
  while (m < mine.length && t < theirs.length) {
    if (sameKind(mine[m], theirs[t])) {
      morph(mine[m++], theirs[t++]);
    } else if (m + 1 < mine.length && sameKind(mine[m + 1], theirs[t])) {
      mine[m++].remove(); // gone from between two kept children
    } else if (t + 1 < theirs.length && sameKind(mine[m], theirs[t + 1])) {
      node.insertBefore(theirs[t++], mine[m]); // new between two kept children
    } else {
      mine[m++].replaceWith(theirs[t++]);
    }
  }
  for (const extra of mine.slice(m)) extra.remove();
  for (const child of theirs.slice(t)) node.append(child);
}

function sameKind(a, b) {
  return a.nodeName === b.nodeName && (a.nodeType !== Node.ELEMENT_NODE || a.className === b.className);
}

/** The URL when it is http(s), else null: nothing else becomes a link. */
export function safeHttpUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (err) {
    return null;
  }
}

/** A link that opens elsewhere without telling it where it came from; text when unsafe. */
export function externalLink(href, text, attrs = {}) {
  const safe = safeHttpUrl(href);
  if (!safe) return document.createTextNode(text);
  return el("a", { ...attrs, href: safe, target: "_blank", rel: "noopener noreferrer nofollow" }, text);
}

/** Text with its http(s) URLs turned into links. */
export function linkified(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    if (match.index > last) fragment.append(text.slice(last, match.index));
    fragment.append(externalLink(match[0], match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

/** A short local time: "14:05" today, "Mar 3, 14:05" otherwise. */
export function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** A `<time>` element showing `clock(iso)`. */
export function timeEl(iso, attrs = {}) {
  return el("time", { ...attrs, datetime: iso, title: iso }, clock(iso));
}

/**
 * Show an error (or clear it with null) in the element `id`. Errors that only say the
 * server could not be reached are marked, so that they all go away once it answers again.
 */
export function showError(id, error) {
  const node = typeof id === "string" ? $(id) : id;
  if (!node) return;
  node.textContent = error ? error.detail || error.message || String(error) : "";
  if (error && error.status === 0) node.dataset.network = "true";
  else delete node.dataset.network;
}

/** Clear every error that said the server could not be reached. */
export function clearNetworkErrors() {
  for (const node of document.querySelectorAll(".error[data-network]")) showError(node, null);
}

/** Say `text` to screen readers (the page's polite live region), keeping the last few. */
export function announce(text) {
  const region = $("announcer");
  region.append(el("p", {}, text));
  while (region.childElementCount > ANNOUNCEMENTS_KEPT) region.firstElementChild.remove();
}

/** A random hex id (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `text` squeezed onto one line and cut to `max` characters. */
export function oneLine(text, max = 80) {
  const flat = String(text).replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
