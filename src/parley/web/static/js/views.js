// Which view is on screen. The address's fragment says it (#/, #/chat/7, #/pages, #/page/3,
// #/billing), so the browser's back button, a reload and a bookmark all land on the same view.
// Wide screens show the chat list beside the main pane; narrow ones show one of the two.

import { $ } from "./dom.js";

const PANES = ["no-chat", "chat-pane", "jobs-pane", "page-pane", "billing-pane"];
const NAV_OF_VIEW = { chats: "chats", chat: "chats", pages: "pages", page: "pages", billing: "billing" };

/** The route in a location fragment: { view, id? }. Unknown fragments are the chat list. */
export function parseRoute(hash) {
  const path = (hash || "").replace(/^#\/?/, "");
  let match = /^chat\/(\d+)$/.exec(path);
  if (match) return { view: "chat", id: Number(match[1]) };
  match = /^page\/(\d+)$/.exec(path);
  if (match) return { view: "page", id: Number(match[1]) };
  if (path === "pages") return { view: "pages" };
  if (path === "billing") return { view: "billing" };
  return { view: "chats" };
}

/** The fragment of a chat's view. */
export const chatHref = (chatId) => `#/chat/${chatId}`;

/** The fragment of a stored page's view. */
export const pageHref = (pageId) => `#/page/${pageId}`;

/** Show `pane` in the main area, and tell narrow screens whether the list or it is on top. */
export function showPane(pane, view) {
  for (const id of PANES) $(id).hidden = id !== pane;
  $("chat-view").dataset.view = view === "chats" ? "list" : "main";
  const current = NAV_OF_VIEW[view];
  for (const link of document.querySelectorAll("#app-nav a")) {
    if (link.dataset.nav === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Go to the chat list, replacing the current history entry (the view shown is gone). */
export function leaveToList() {
  history.replaceState(null, "", "#/");
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
