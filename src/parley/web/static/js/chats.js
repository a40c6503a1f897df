// The chat list (with unread counts), the open chat's heading, and starting a new chat.

import { api } from "./api.js";
import { $, el, morph, oneLine, showError } from "./dom.js";
import { chatName, nameOf, soon, startSnapshot, state } from "./state.js";
import { chatHref } from "./views.js";

/** Fetch the chat list and show it. */
export async function loadChats() {
  const snapshot = startSnapshot("chats");
  const page = await api("chats", { params: { limit: 100 } });
  if (!snapshot.isLatest()) return;
  state.chats.clear();
  for (const chat of page.items) rememberChat(chat);
  renderChatList();
  renderChatHead();
  if (snapshot.missedChanges()) reloadChatsSoon();
}

/** Keep a chat (and its members' names) as a listing gave it. */
export function rememberChat(chat) {
  // The listing counted every message up to its last one (a chat's messages commit in id
  // order); `message.created` events count the rest, each once, in whatever order they come.
  chat.listedUpTo = chat.lastMessage ? chat.lastMessage.id : 0;
  chat.seenSince = new Set();
  state.chats.set(chat.id, chat);
  for (const m of chat.members || []) state.names.set(m.userId, m.displayName || m.username);
}

/** Refetch the list shortly: several events in a row cost one request. */
export const reloadChatsSoon = soon(() => loadChats().catch(() => {}));

function activity(chat) {
  return chat.lastMessage ? chat.lastMessage.createdAt : chat.updatedAt || chat.createdAt;
}

function unreadText(count) {
  return `${count} unread message${count === 1 ? "" : "s"}`;
}

/** Draw the list, latest activity first; keyboard focus stays on the chat it was on.
 *
 * Items are updated in place, down to their text (`morph`), and an item whose content did
 * not change is not touched: a list rebuilt on every event would swallow a click whose
 * press and release straddle an update (the pressed element would be gone, so no link gets
 * the click). Items have no listeners (a link works by its `href`), so keeping their
 * elements keeps nothing stale. */
export function renderChatList() {
  const list = $("chat-list");
  const focused = document.activeElement && document.activeElement.closest(".chat-item");
  const focusedId = focused ? focused.dataset.chatId : null;
  const chats = [...state.chats.values()].sort((a, b) => (activity(a) < activity(b) ? 1 : -1));
  $("chat-list-empty").hidden = chats.length > 0;
  const shown = new Map([...list.children].map((item) => [item.dataset.chatId, item]));
  chats.forEach((chat, index) => {
    const fresh = chatItem(chat);
    let item = shown.get(fresh.dataset.chatId);
    if (item) {
      shown.delete(fresh.dataset.chatId);
      morph(item, fresh);
    } else {
      item = fresh;
    }
    const there = list.children[index];
    if (there !== item) list.insertBefore(item, there || null);
  });
  for (const gone of shown.values()) gone.remove();
  if (focusedId !== null && !list.contains(document.activeElement)) {
    const link = list.querySelector(`.chat-item[data-chat-id="${CSS.escape(focusedId)}"] a`);
    if (link) link.focus();
  }
}

function chatItem(chat) {
  const last = chat.lastMessage;
  const preview = last ? `${nameOf(last.authorId)}: ${last.text}` : "No messages yet";
  const open = chat.id === state.current;
  const unread = open ? 0 : chat.unreadCount || 0;
  return el(
    "li",
    { class: `chat-item${open ? " active" : ""}${unread ? " has-unread" : ""}`, dataset: { chatId: chat.id } },
    el(
      "a",
      { class: "chat-link", href: chatHref(chat.id), "aria-current": open ? "true" : null },
      el(
        "span",
        { class: "chat-item-top" },
        el("span", { class: "chat-name" }, chatName(chat)),
        unread ? el("span", { class: "badge", "aria-hidden": "true" }, unread) : null,
        unread ? el("span", { class: "sr-only unread-text" }, `, ${unreadText(unread)}`) : null,
      ),
      el("span", { class: "chat-preview" }, oneLine(preview)),
    ),
  );
}

/** The open chat's title and members. */
export function renderChatHead() {
  const chat = state.chats.get(state.current);
  if (!chat) return;
  $("chat-title").textContent = chatName(chat);
  const members = chat.members || [];
  const other = members.find((m) => !state.me || m.userId !== state.me.id);
  $("chat-members").textContent =
    chat.type === "group" ? members.map((m) => m.displayName || m.username).join(", ") : other ? `@${other.username}` : "";
}

// ---------------------------------------------------------------- a new chat

/** Open or close the "new chat" form. */
export function toggleNewChat(open) {
  const form = $("new-chat-form");
  form.hidden = open === undefined ? !form.hidden : !open;
  $("new-chat-toggle").setAttribute("aria-expanded", String(!form.hidden));
  if (!form.hidden) $("new-chat-members").focus();
}

/** The form follows the kind of chat: a group has a title and any number of members. */
export function onKindChange() {
  const group = new FormData($("new-chat-form")).get("kind") === "group";
  $("new-chat-title").hidden = !group;
  $("new-chat-title-label").hidden = !group;
  $("new-chat-title").required = group;
  $("new-chat-members-label").textContent = group ? "Members (usernames, separated by commas)" : "Username";
  $("new-chat-members").required = !group;
}

async function findUserId(username) {
  const page = await api("users", { params: { query: username, limit: 100 } });
  const user = page.items.find((u) => u.username === username);
  if (!user) throw new Error(`No user named “${username}”.`);
  return user.id;
}

/** Create the chat the form describes; resolves to its id. */
export async function createChatFromForm() {
  showError("new-chat-error", null);
  const kind = new FormData($("new-chat-form")).get("kind");
  const names = $("new-chat-members")
    .value.split(/[\s,]+/)
    .map((n) => n.replace(/^@/, "").toLowerCase())
    .filter(Boolean);
  const ids = [];
  for (const name of names) ids.push(await findUserId(name));
  if (kind === "direct" && ids.length !== 1) throw new Error("A direct chat needs exactly one username.");
  const body =
    kind === "direct"
      ? { type: "direct", memberIds: ids }
      : { type: "group", title: $("new-chat-title").value.trim() || null, memberIds: ids };
  const chat = await api("chats", { method: "POST", json: body });
  $("new-chat-form").reset();
  onKindChange();
  toggleNewChat(false);
  await loadChats();
  return chat.id;
}
