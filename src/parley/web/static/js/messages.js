// The open chat: its messages (drawn one by one, so an edit in progress survives other
// updates), sending, editing, deleting, read markers and the typing line.

import { api, enc } from "./api.js";
import { $, announce, el, linkified, morph, oneLine, randomId, safeHttpUrl, showError, timeEl } from "./dom.js";
import { reloadChatsSoon, renderChatHead, renderChatList } from "./chats.js";
import { chatName, nameOf, ownsChat, soon, startSnapshot, state } from "./state.js";

const PAGE_SIZE = 30;
const TYPING_SHOW_MS = 4000;
const SEND_ATTEMPTS = 3;
const STICK_TO_BOTTOM_PX = 40;
const SEEN_KEPT = 500; // message ids remembered per chat since its listing, to count each once

const nodes = new Map(); // message id -> its <li>
const typing = new Map(); // userId -> timeout handle (open chat only)

// ---------------------------------------------------------------- opening a chat

/** Show chat `chatId` with its newest messages; false when it cannot be seen. */
export async function openChat(chatId) {
  if (state.current !== chatId) {
    state.current = chatId;
    state.editing = null;
    state.confirmingDelete = null;
    clearTyping();
    state.messages.clear();
    state.nextCursor = null;
    renderAllMessages({ stickToBottom: true });
    showError("send-error", null);
    $("chat-title").textContent = "";
    $("chat-members").textContent = "";
    renderChatHead();
    renderChatList();
  }
  return reloadOpenChat({ focus: true });
}

/** Refetch the open chat's newest messages (after opening it, or after a gap). */
export async function reloadOpenChat({ focus = false } = {}) {
  const chatId = state.current;
  if (chatId == null) return true;
  try {
    const snapshot = startSnapshot("messages");
    const page = await api(`chats/${enc(chatId)}/messages`, { params: { limit: PAGE_SIZE } });
    if (state.current !== chatId) return true;
    if (snapshot.isLatest()) {
      state.messages.clear();
      for (const message of page.items) state.messages.set(message.id, message);
      state.nextCursor = page.nextCursor;
      renderAllMessages({ stickToBottom: true });
      markRead();
      if (snapshot.missedChanges()) reloadOpenChatSoon(chatId);
    }
  } catch (err) {
    if (err.status === 404) return false;
    showError("send-error", err);
  }
  if (focus && state.current === chatId && !state.editing) $("message-input").focus({ preventScroll: true });
  return true;
}

/** Refetch the open chat shortly, if it is still `chatId` then. */
const reloadOpenChatSoon = soon((chatId) => {
  if (state.current === chatId) reloadOpenChat();
});

/** Forget the open chat (its view is gone). */
export function closeChat() {
  if (state.current == null) return;
  state.current = null;
  state.messages.clear();
  state.editing = null;
  state.confirmingDelete = null;
  clearTyping();
  renderAllMessages({});
  renderChatList();
}

/** Fetch the page of messages before the oldest one shown. */
export async function loadOlder() {
  if (!state.nextCursor || state.current == null) return;
  const chatId = state.current;
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  try {
    const page = await api(`chats/${enc(chatId)}/messages`, {
      params: { limit: PAGE_SIZE, cursor: state.nextCursor },
    });
    if (state.current !== chatId) return;
    for (const message of page.items) state.messages.set(message.id, message);
    state.nextCursor = page.nextCursor;
    renderAllMessages({});
    box.scrollTop = box.scrollHeight - fromBottom; // keep the reader's place
  } catch (err) {
    showError("send-error", err);
  }
}

// ---------------------------------------------------------------- drawing messages

function isMine(message) {
  return Boolean(state.me) && message.authorId === state.me.id;
}

function messageNode(message) {
  const mine = isMine(message);
  const editing = state.editing && state.editing.id === message.id;
  const confirming = state.confirmingDelete === message.id;
  const canDelete = mine || ownsChat(message.chatId);
  const actions = editing || confirming ? [] : [
    mine ? el("button", { type: "button", class: "link small", dataset: { action: "edit" } }, "Edit") : null,
    canDelete ? el("button", { type: "button", class: "link small", dataset: { action: "delete" } }, "Delete") : null,
  ];
  const previews = (message.previews || []).filter((p) => p.status === "ready");
  return el(
    "li",
    { class: `message${mine ? " mine" : ""}`, dataset: { messageId: message.id } },
    el(
      "div",
      { class: "meta" },
      el("span", { class: "author" }, nameOf(message.authorId)),
      timeEl(message.createdAt),
      message.editedAt ? el("span", { class: "edited" }, "edited") : null,
      actions.some(Boolean) ? el("span", { class: "actions" }, actions) : null,
    ),
    editing ? editForm(message) : el("div", { class: "text" }, linkified(message.text)),
    confirming ? deleteConfirmation() : null,
    previews.map(previewNode),
  );
}

function editForm(message) {
  const id = `edit-${message.id}`;
  const draft = state.editing.draft ?? message.text;
  return el(
    "form",
    { class: "edit-form", dataset: { action: "save-edit" } },
    el("label", { for: id, class: "sr-only" }, "Edit your message"),
    el("textarea", { id, class: "edit-input", rows: "2", maxlength: "4000", required: true }, draft),
    el(
      "span",
      { class: "edit-buttons" },
      el("button", { type: "submit", class: "primary small" }, "Save"),
      el("button", { type: "button", class: "small", dataset: { action: "cancel-edit" } }, "Cancel"),
    ),
    el("p", { class: "error edit-error", role: "alert" }),
  );
}

function deleteConfirmation() {
  return el(
    "div",
    { class: "confirm", role: "group", "aria-label": "Delete this message?" },
    el("span", {}, "Delete this message?"),
    el("button", { type: "button", class: "danger small", dataset: { action: "confirm-delete" } }, "Delete"),
    el("button", { type: "button", class: "small", dataset: { action: "cancel-delete" } }, "Keep"),
  );
}

function previewNode(preview) {
  const href = safeHttpUrl(preview.url);
  const image = preview.imageUrl && safeHttpUrl(preview.imageUrl);
  const img = image ? el("img", { src: image, alt: "", loading: "lazy", referrerpolicy: "no-referrer" }) : null;
  if (img) img.addEventListener("error", () => img.remove());
  const title = preview.title || preview.url;
  return el(
    "div",
    { class: "preview" },
    img,
    el(
      "div",
      { class: "preview-body" },
      preview.siteName ? el("div", { class: "site" }, preview.siteName) : null,
      href
        ? el("a", { class: "title", href, target: "_blank", rel: "noopener noreferrer nofollow" }, title)
        : el("span", { class: "title" }, title),
      preview.description ? el("div", { class: "description" }, preview.description) : null,
    ),
  );
}

function atBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < STICK_TO_BOTTOM_PX;
}

function stickIf(wasAtBottom) {
  if (wasAtBottom) $("messages").scrollTop = $("messages").scrollHeight;
}

/** Draw every message of the open chat, oldest first. */
export function renderAllMessages({ stickToBottom }) {
  const stick = stickToBottom || atBottom();
  saveDraft();
  nodes.clear();
  const ordered = [...state.messages.values()].sort((a, b) => a.id - b.id);
  for (const message of ordered) nodes.set(message.id, messageNode(message));
  $("message-list").replaceChildren(...nodes.values());
  $("load-older").hidden = !state.nextCursor;
  restoreEditFocus();
  stickIf(stick);
}

/** Draw (or redraw) one message in its place. */
function placeMessage(message) {
  const stick = atBottom();
  const list = $("message-list");
  const old = nodes.get(message.id);
  const hadFocus = old && old.contains(document.activeElement);
  if (old && old.contains(document.querySelector(".edit-input"))) saveDraft();
  const node = messageNode(message);
  if (old) {
    // Kept, not replaced: a click pressed on one of its buttons before an edit or a
    // preview arrived, and released after, still lands (where the button did not move).
    morph(old, node);
  } else {
    nodes.set(message.id, node);
    let before = null;
    for (let n = list.lastElementChild; n && Number(n.dataset.messageId) > message.id; n = n.previousElementSibling) {
      before = n;
    }
    list.insertBefore(node, before);
  }
  const shown = old || node;
  if (hadFocus && !shown.contains(document.activeElement)) restoreEditFocus() || focusFirstAction(shown);
  stickIf(stick);
}

function removeMessageNode(id) {
  const node = nodes.get(id);
  if (!node) return;
  const hadFocus = node.contains(document.activeElement);
  nodes.delete(id);
  node.remove();
  if (hadFocus) $("message-input").focus({ preventScroll: true });
}

/** Keep the edit in progress (its text and caret) across a redraw of its message. */
function saveDraft() {
  const input = document.querySelector("#message-list .edit-input");
  if (!input || !state.editing) return;
  state.editing.draft = input.value;
  state.editing.caret = document.activeElement === input ? [input.selectionStart, input.selectionEnd] : null;
}

function restoreEditFocus() {
  if (!state.editing) return false;
  const input = document.querySelector("#message-list .edit-input");
  if (!input) return false;
  const [start, end] = state.editing.caret || [input.value.length, input.value.length];
  input.focus({ preventScroll: true });
  input.setSelectionRange(start, end);
  return true;
}

function focusFirstAction(node) {
  const button = node.querySelector("button");
  if (button) button.focus({ preventScroll: true });
}

// ---------------------------------------------------------------- sending

/** Send the composer's text to the open chat (retried with the same clientId). */
export async function sendFromComposer() {
  const input = $("message-input");
  const text = input.value;
  if (!text.trim() || state.current == null) return;
  const chatId = state.current;
  const body = { text, clientId: randomId() };
  showError("send-error", null);
  input.value = "";
  autoGrow();
  try {
    const message = await sendWithRetry(chatId, body);
    if (state.current === chatId) {
      state.messages.set(message.id, message);
      placeMessage(message);
      $("messages").scrollTop = $("messages").scrollHeight;
    }
    noteLastMessage(message);
    markRead();
  } catch (err) {
    if (state.current === chatId && !input.value) input.value = text; // let them retry
    showError("send-error", err);
  }
}

async function sendWithRetry(chatId, body) {
  // The same clientId on every attempt: the server never stores the message twice.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api(`chats/${enc(chatId)}/messages`, { method: "POST", json: body });
    } catch (err) {
      const transient = err.status === 0 || err.status === 429 || err.status >= 502;
      // Offline, a retry in a second cannot do better: say so now, the text stays in the box.
      if (!transient || attempt >= SEND_ATTEMPTS || !navigator.onLine) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
    }
  }
}

function noteLastMessage(message) {
  const chat = state.chats.get(message.chatId);
  if (!chat) {
    reloadChatsSoon();
    return;
  }
  if (!chat.lastMessage || chat.lastMessage.id <= message.id) chat.lastMessage = message;
  renderChatList();
}

/** Move the open chat's read marker to its newest message (only while the page is seen). */
export function markRead() {
  if (state.current == null || document.visibilityState !== "visible") return;
  const chatId = state.current;
  let newest = null;
  for (const id of state.messages.keys()) if (newest === null || id > newest) newest = id;
  if (newest === null || (state.lastReadSent.get(chatId) || 0) >= newest) return;
  state.lastReadSent.set(chatId, newest);
  const chat = state.chats.get(chatId);
  if (chat) chat.unreadCount = 0;
  api(`chats/${enc(chatId)}/read`, { method: "POST", json: { messageId: newest } }).catch(() =>
    state.lastReadSent.delete(chatId),
  );
}

/** The composer grows with its text, up to a limit. */
export function autoGrow() {
  const input = $("message-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

// ---------------------------------------------------------------- editing and deleting

/** Handle a click on a message's button (edit, delete, and their confirmations). */
export function onMessageAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const node = button.closest(".message");
  const message = node && state.messages.get(Number(node.dataset.messageId));
  if (!message) return;
  switch (button.dataset.action) {
    case "edit":
      state.confirmingDelete = null;
      state.editing = { id: message.id, draft: null, caret: null };
      renderAllMessages({});
      break;
    case "cancel-edit":
      state.editing = null;
      placeMessage(message);
      break;
    case "delete":
      state.editing = null;
      state.confirmingDelete = message.id;
      placeMessage(message);
      nodes.get(message.id).querySelector('[data-action="confirm-delete"]').focus();
      break;
    case "cancel-delete":
      state.confirmingDelete = null;
      placeMessage(message);
      break;
    case "confirm-delete":
      deleteMessage(message);
      break;
    default:
      break;
  }
}

/** Save the edit form's text. */
export async function onEditSubmit(event) {
  const form = event.target.closest("form.edit-form");
  if (!form) return;
  event.preventDefault();
  const node = form.closest(".message");
  const message = state.messages.get(Number(node.dataset.messageId));
  const text = form.querySelector(".edit-input").value;
  if (!message || !text.trim()) return;
  if (text === message.text) {
    state.editing = null;
    placeMessage(message);
    return;
  }
  try {
    const updated = await api(`messages/${enc(message.id)}`, { method: "PATCH", json: { text } });
    state.editing = null;
    if (state.messages.has(updated.id)) {
      state.messages.set(updated.id, updated);
      placeMessage(updated);
    }
    noteUpdated(updated);
  } catch (err) {
    showError(form.querySelector(".edit-error"), err);
  }
}

/** Enter saves an edit, Escape abandons it. */
export function onEditKey(event) {
  if (!event.target.classList.contains("edit-input")) return;
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    event.target.form.requestSubmit();
  } else if (event.key === "Escape") {
    event.preventDefault();
    event.target.form.querySelector('[data-action="cancel-edit"]').click();
  }
}

async function deleteMessage(message) {
  showError("send-error", null);
  try {
    await api(`messages/${enc(message.id)}`, { method: "DELETE" });
    forget(message.chatId, message.id);
  } catch (err) {
    state.confirmingDelete = null;
    if (state.messages.has(message.id)) placeMessage(message);
    showError("send-error", err);
  }
}

function forget(chatId, messageId) {
  if (state.editing && state.editing.id === messageId) state.editing = null;
  if (state.confirmingDelete === messageId) state.confirmingDelete = null;
  if (chatId === state.current && state.messages.delete(messageId)) removeMessageNode(messageId);
  const chat = state.chats.get(chatId);
  // The list's preview or count may have included it: only the server can say.
  if (chat && ((chat.lastMessage && chat.lastMessage.id === messageId) || chat.unreadCount)) reloadChatsSoon();
}

function noteUpdated(message) {
  const chat = state.chats.get(message.chatId);
  if (chat && chat.lastMessage && chat.lastMessage.id === message.id) {
    chat.lastMessage = message;
    renderChatList();
  }
}

// ---------------------------------------------------------------- live events

/** Whether the chat's listing and the events since have not yet counted message `id`. */
function firstSighting(chat, id) {
  if (id <= chat.listedUpTo || chat.seenSince.has(id)) return false;
  chat.seenSince.add(id);
  if (chat.seenSince.size > SEEN_KEPT) {
    // Forget the lowest id, and count nothing up to it again.
    const lowest = Math.min(...chat.seenSince);
    chat.seenSince.delete(lowest);
    chat.listedUpTo = lowest;
  }
  return true;
}

/** `message.created`: show it, count it as unread elsewhere, and announce it. */
export function onMessageCreated(message) {
  const chat = state.chats.get(message.chatId);
  const mine = isMine(message);
  const isNew = !chat || firstSighting(chat, message.id);
  if (message.chatId === state.current) {
    state.messages.set(message.id, message);
    clearTimeout(typing.get(message.authorId));
    typing.delete(message.authorId);
    renderTyping();
    placeMessage(message);
    markRead();
  } else if (chat && !mine && isNew) {
    chat.unreadCount = (chat.unreadCount || 0) + 1;
  }
  if (!mine && isNew) {
    const where = chat && chat.type === "group" ? ` in ${chatName(chat)}` : "";
    announce(`${nameOf(message.authorId)}${where}: ${oneLine(message.text, 200)}`);
  }
  noteLastMessage(message);
}

/** `message.updated`: an edit or a link preview. */
export function onMessageUpdated(message) {
  if (message.chatId === state.current && state.messages.has(message.id)) {
    state.messages.set(message.id, message);
    placeMessage(message);
  }
  noteUpdated(message);
}

/** `message.deleted`. */
export function onMessageDeleted({ id, chatId }) {
  forget(chatId, id);
}

// ---------------------------------------------------------------- typing

/** `typing`: someone else is writing in the open chat. */
export function onTyping({ chatId, userId }) {
  if (chatId !== state.current || (state.me && userId === state.me.id)) return;
  clearTimeout(typing.get(userId));
  typing.set(
    userId,
    setTimeout(() => {
      typing.delete(userId);
      renderTyping();
    }, TYPING_SHOW_MS),
  );
  renderTyping();
}

function clearTyping() {
  for (const handle of typing.values()) clearTimeout(handle);
  typing.clear();
  renderTyping();
}

function renderTyping() {
  const who = [...typing.keys()].map(nameOf);
  $("typing").textContent = who.length === 0 ? "" : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
}
