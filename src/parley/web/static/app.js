// Parley's web page: cookie session + CSRF header, REST for history and writes, one
// WebSocket for live events (resumed by id after a disconnect). No framework, no build.
// Every URL is relative to the document, so the page works under a path prefix.
"use strict";

(() => {
  const PAGE_SIZE = 30;
  const TYPING_SEND_EVERY_MS = 2000;
  const TYPING_SHOW_MS = 4000;
  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 30000;
  const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

  const state = {
    me: null, // the User
    csrf: null, // kept in memory only
    chats: new Map(), // id -> ChatSummary
    names: new Map(), // userId -> display name
    current: null, // open chat id
    messages: new Map(), // id -> Message, for the open chat
    nextCursor: null,
    lastReadSent: new Map(), // chatId -> highest messageId we marked read
    typing: new Map(), // userId -> timeout handle (open chat only)
    lastTypingSent: 0,
    ws: null,
    lastEventId: null,
    wantSocket: false,
    reconnectDelay: RECONNECT_FIRST_MS,
    reconnectTimer: null,
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(status, detail) {
      super(status ? `${status} ${detail}` : detail);
      this.status = status;
      this.detail = detail;
    }
  }

  function apiUrl(path) {
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

  async function api(path, { method = "GET", json, form, params } = {}) {
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
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    let response;
    try {
      response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    } catch (err) {
      throw new ApiError(0, "cannot reach the server");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, detailText(data, response.statusText || "error"));
      if (response.status === 401 && state.me && !path.startsWith("auth/")) sessionLost();
      throw error;
    }
    return data;
  }

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child == null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function safeHttpUrl(value) {
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  function externalLink(href, text) {
    const safe = safeHttpUrl(href);
    if (!safe) return document.createTextNode(text);
    return el("a", { href: safe, target: "_blank", rel: "noopener noreferrer nofollow" }, text);
  }

  function linkified(text) {
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

  function clock(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function newClientId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // randomUUID needs a secure context; this does not
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function nameOf(userId) {
    if (state.me && userId === state.me.id) return "You";
    return state.names.get(userId) || `user ${userId}`;
  }

  function chatName(chat) {
    if (chat.title) return chat.title;
    const others = (chat.members || []).filter((m) => !state.me || m.userId !== state.me.id);
    return others.map((m) => m.displayName || m.username).join(", ") || "(just you)";
  }

  function showError(id, error) {
    // People read the server's words; the status code is for the console.
    $(id).textContent = error ? error.detail || error.message || String(error) : "";
  }

  // ---------------------------------------------------------------- auth

  function showAuth(note) {
    closeSocket();
    // Nothing of the previous account stays in memory for the next one.
    state.current = null;
    state.chats.clear();
    state.names.clear();
    state.messages.clear();
    state.lastReadSent.clear();
    clearTyping();
    $("chat-list").replaceChildren();
    $("message-list").replaceChildren();
    $("chat-pane").hidden = true;
    $("no-chat").hidden = false;
    $("chat-view").hidden = true;
    $("session-bar").hidden = true;
    $("auth-view").hidden = false;
    showError("login-error", note ? { message: note } : null);
    $("login-username").focus();
  }

  function sessionLost() {
    state.me = null;
    state.csrf = null;
    showAuth("Your session has ended. Please sign in again.");
  }

  async function login(username, password, otp) {
    const form = { username, password };
    if (otp) form.otp = otp;
    const session = await api("auth/login", { method: "POST", form });
    state.csrf = session.csrfToken;
    await enterApp();
  }

  async function onLogin(event) {
    event.preventDefault();
    showError("login-error", null);
    const username = $("login-username").value.trim();
    const password = $("login-password").value;
    const otp = $("login-otp").value.trim();
    try {
      await login(username, password, otp);
      $("login-password").value = "";
      $("login-otp").value = "";
      $("login-otp-row").hidden = true;
    } catch (err) {
      if (err.status === 401 && (err.detail === "otp_required" || err.detail === "invalid_otp")) {
        $("login-otp-row").hidden = false;
        $("login-otp").focus();
        showError("login-error", {
          message: err.detail === "otp_required" ? "Enter your one-time code." : "Wrong one-time code.",
        });
      } else {
        showError("login-error", err);
      }
    }
  }

  async function onRegister(event) {
    event.preventDefault();
    showError("register-error", null);
    const username = $("register-username").value.trim();
    const password = $("register-password").value;
    const displayName = $("register-display-name").value.trim();
    const body = { username, password };
    if (displayName) body.displayName = displayName;
    try {
      await api("auth/register", { method: "POST", json: body });
      await login(username, password);
      $("register-form").reset();
    } catch (err) {
      showError("register-error", err);
    }
  }

  async function onLogout() {
    try {
      await api("auth/logout-session", { method: "POST" });
    } catch (err) {
      // the cookie may already be gone; the page forgets the session either way
    }
    state.me = null;
    state.csrf = null;
    showAuth(null);
  }

  async function enterApp() {
    state.me = await api("users/me");
    state.names.set(state.me.id, state.me.displayName);
    $("me-name").textContent = `${state.me.displayName} (@${state.me.username})`;
    $("auth-view").hidden = true;
    $("chat-view").hidden = false;
    $("session-bar").hidden = false;
    await loadChats();
    openSocket();
  }

  // ---------------------------------------------------------------- chats

  async function loadChats() {
    const page = await api("chats", { params: { limit: 100 } });
    state.chats.clear();
    for (const chat of page.items) rememberChat(chat);
    renderChatList();
    if (state.current != null && state.chats.has(state.current)) renderChatHead();
  }

  function rememberChat(chat) {
    state.chats.set(chat.id, chat);
    for (const m of chat.members || []) state.names.set(m.userId, m.displayName || m.username);
  }

  let reloadTimer = null;
  function reloadChatsSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => loadChats().catch(() => {}), 150);
  }

  function sortedChats() {
    const activity = (c) => (c.lastMessage ? c.lastMessage.createdAt : c.updatedAt || c.createdAt);
    return [...state.chats.values()].sort((a, b) => (activity(a) < activity(b) ? 1 : -1));
  }

  function renderChatList() {
    const list = $("chat-list");
    list.replaceChildren();
    const chats = sortedChats();
    $("chat-list-empty").hidden = chats.length > 0;
    for (const chat of chats) {
      const last = chat.lastMessage;
      const preview = last ? `${nameOf(last.authorId)}: ${last.text}` : "No messages yet";
      const unread = chat.id === state.current ? 0 : chat.unreadCount;
      const item = el(
        "li",
        {
          class: `chat-item${chat.id === state.current ? " active" : ""}${unread ? " has-unread" : ""}`,
          dataset: { chatId: chat.id },
          tabindex: "0",
          role: "button",
        },
        el(
          "div",
          { class: "chat-item-top" },
          el("span", { class: "chat-name" }, chatName(chat)),
          unread ? el("span", { class: "badge", title: `${unread} unread` }, unread) : null,
        ),
        el("div", { class: "chat-preview" }, preview.replace(/\s+/g, " ").slice(0, 80)),
      );
      item.addEventListener("click", () => openChat(chat.id));
      item.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          openChat(chat.id);
        }
      });
      list.append(item);
    }
  }

  function renderChatHead() {
    const chat = state.chats.get(state.current);
    if (!chat) return;
    $("chat-title").textContent = chatName(chat);
    const members = (chat.members || []).map((m) => m.displayName || m.username);
    $("chat-members").textContent = chat.type === "group" ? members.join(", ") : `@${
      ((chat.members || []).find((m) => m.userId !== state.me.id) || {}).username || ""
    }`;
  }

  async function openChat(chatId) {
    state.current = chatId;
    state.messages.clear();
    state.nextCursor = null;
    clearTyping();
    $("no-chat").hidden = true;
    $("chat-pane").hidden = false;
    $("message-list").replaceChildren();
    showError("send-error", null);
    renderChatHead();
    renderChatList();
    try {
      const page = await api(`chats/${encodeURIComponent(chatId)}/messages`, { params: { limit: PAGE_SIZE } });
      if (state.current !== chatId) return;
      for (const message of page.items) state.messages.set(message.id, message);
      state.nextCursor = page.nextCursor;
      renderMessages({ stickToBottom: true });
      markRead();
    } catch (err) {
      showError("send-error", err);
    }
    $("message-input").focus();
  }

  async function loadOlder() {
    if (!state.nextCursor || state.current == null) return;
    const chatId = state.current;
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    try {
      const page = await api(`chats/${encodeURIComponent(chatId)}/messages`, {
        params: { limit: PAGE_SIZE, cursor: state.nextCursor },
      });
      if (state.current !== chatId) return;
      for (const message of page.items) state.messages.set(message.id, message);
      state.nextCursor = page.nextCursor;
      renderMessages({});
      box.scrollTop = box.scrollHeight - fromBottom; // keep the reader's place
    } catch (err) {
      showError("send-error", err);
    }
  }

  async function onNewChat(event) {
    event.preventDefault();
    showError("new-chat-error", null);
    const kind = new FormData($("new-chat-form")).get("kind");
    const names = $("new-chat-members").value.split(/[\s,]+/).map((n) => n.replace(/^@/, "").toLowerCase()).filter(Boolean);
    try {
      const ids = [];
      for (const name of names) ids.push(await findUserId(name));
      if (kind === "direct" && ids.length !== 1) throw new Error("A direct chat needs exactly one username.");
      const body = kind === "direct"
        ? { type: "direct", memberIds: ids }
        : { type: "group", title: $("new-chat-title").value.trim() || null, memberIds: ids };
      const chat = await api("chats", { method: "POST", json: body });
      $("new-chat-form").reset();
      toggleNewChat(false);
      await loadChats();
      openChat(chat.id);
    } catch (err) {
      showError("new-chat-error", err);
    }
  }

  async function findUserId(username) {
    const page = await api("users", { params: { query: username, limit: 100 } });
    const user = page.items.find((u) => u.username === username);
    if (!user) throw new Error(`No user named “${username}”.`);
    return user.id;
  }

  function toggleNewChat(open) {
    const form = $("new-chat-form");
    form.hidden = open === undefined ? !form.hidden : !open;
    $("new-chat-toggle").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) $("new-chat-members").focus();
  }

  function onKindChange() {
    const group = new FormData($("new-chat-form")).get("kind") === "group";
    $("new-chat-title").hidden = !group;
    $("new-chat-title").required = group;
    $("new-chat-members").placeholder = group ? "Members: alice, bob" : "Username";
    $("new-chat-members").required = !group;
  }

  // ---------------------------------------------------------------- messages

  function renderMessage(message) {
    const mine = state.me && message.authorId === state.me.id;
    const previews = (message.previews || []).filter((p) => p.status === "ready");
    return el(
      "li",
      { class: `message${mine ? " mine" : ""}`, dataset: { messageId: message.id } },
      el(
        "div",
        { class: "meta" },
        el("span", { class: "author" }, nameOf(message.authorId)),
        el("time", { datetime: message.createdAt, title: message.createdAt }, clock(message.createdAt)),
        message.editedAt ? el("span", { class: "edited" }, "edited") : null,
      ),
      el("div", { class: "text" }, linkified(message.text)),
      ...previews.map(renderPreview),
    );
  }

  function renderPreview(preview) {
    const href = safeHttpUrl(preview.url);
    const image = preview.imageUrl && safeHttpUrl(preview.imageUrl);
    const img = image
      ? el("img", { src: image, alt: "", loading: "lazy", referrerpolicy: "no-referrer" })
      : null;
    if (img) img.addEventListener("error", () => img.remove());
    return el(
      "div",
      { class: "preview" },
      img,
      el(
        "div",
        { class: "preview-body" },
        preview.siteName ? el("div", { class: "site" }, preview.siteName) : null,
        href
          ? el("a", { class: "title", href, target: "_blank", rel: "noopener noreferrer nofollow" }, preview.title || preview.url)
          : el("span", { class: "title" }, preview.title || preview.url),
        preview.description ? el("div", { class: "description" }, preview.description) : null,
      ),
    );
  }

  function renderMessages({ stickToBottom }) {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const ordered = [...state.messages.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    $("message-list").replaceChildren(...ordered.map(renderMessage));
    $("load-older").hidden = !state.nextCursor;
    if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
  }

  async function onSend(event) {
    event.preventDefault();
    const input = $("message-input");
    const text = input.value;
    if (!text.trim() || state.current == null) return;
    const chatId = state.current;
    const body = { text, clientId: newClientId() };
    showError("send-error", null);
    input.value = "";
    autoGrow();
    try {
      const message = await sendWithRetry(chatId, body);
      if (state.current === chatId) {
        state.messages.set(message.id, message);
        renderMessages({ stickToBottom: true });
      }
      noteLastMessage(message);
      markRead();
    } catch (err) {
      if (state.current === chatId && !input.value) input.value = text; // let them retry
      showError("send-error", err);
    }
  }

  async function sendWithRetry(chatId, body) {
    // The same clientId on every attempt: the server never stores it twice.
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await api(`chats/${encodeURIComponent(chatId)}/messages`, { method: "POST", json: body });
      } catch (err) {
        const transient = err.status === 0 || err.status === 429 || err.status >= 502;
        if (!transient || attempt >= 2) throw err;
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

  function markRead() {
    if (state.current == null || document.visibilityState !== "visible") return;
    const chatId = state.current;
    let newest = null;
    for (const id of state.messages.keys()) if (newest === null || id > newest) newest = id;
    if (newest === null || (state.lastReadSent.get(chatId) || 0) >= newest) return;
    state.lastReadSent.set(chatId, newest);
    const chat = state.chats.get(chatId);
    if (chat) chat.unreadCount = 0;
    api(`chats/${encodeURIComponent(chatId)}/read`, { method: "POST", json: { messageId: newest } }).catch(
      () => state.lastReadSent.delete(chatId),
    );
  }

  function autoGrow() {
    const input = $("message-input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  function onComposerKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("send-form").requestSubmit();
    }
  }

  function onComposerInput() {
    autoGrow();
    const now = Date.now();
    if (state.current == null || now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.lastTypingSent = now;
      state.ws.send(JSON.stringify({ type: "typing", chatId: state.current }));
    }
  }

  // ---------------------------------------------------------------- typing indicator

  function showTyping(userId) {
    clearTimeout(state.typing.get(userId));
    state.typing.set(
      userId,
      setTimeout(() => {
        state.typing.delete(userId);
        renderTyping();
      }, TYPING_SHOW_MS),
    );
    renderTyping();
  }

  function clearTyping() {
    for (const handle of state.typing.values()) clearTimeout(handle);
    state.typing.clear();
    renderTyping();
  }

  function renderTyping() {
    const who = [...state.typing.keys()].map(nameOf);
    $("typing").textContent = who.length === 0 ? "" : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
  }

  // ---------------------------------------------------------------- live events

  function socketUrl() {
    const url = apiUrl("ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (state.lastEventId) url.searchParams.set("lastEventId", state.lastEventId);
    return url.href;
  }

  function setStatus(kind, text) {
    $("status").dataset.state = kind;
    $("status").textContent = text;
  }

  function openSocket() {
    state.wantSocket = true;
    clearTimeout(state.reconnectTimer);
    if (state.ws) return;
    setStatus("connecting", "connecting…");
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    ws.addEventListener("open", () => {
      state.reconnectDelay = RECONNECT_FIRST_MS;
      setStatus("live", "live");
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (frame && typeof frame === "object") handleEvent(frame);
    });
    ws.addEventListener("close", (event) => {
      if (state.ws === ws) state.ws = null;
      if (!state.wantSocket) return;
      if (event.code === 4401) {
        sessionLost();
        return;
      }
      const delay = state.reconnectDelay * (0.5 + Math.random() / 2);
      state.reconnectDelay = Math.min(state.reconnectDelay * 2, RECONNECT_MAX_MS);
      setStatus("offline", "reconnecting…");
      state.reconnectTimer = setTimeout(openSocket, delay);
    });
  }

  function closeSocket() {
    state.wantSocket = false;
    clearTimeout(state.reconnectTimer);
    if (state.ws) state.ws.close(1000, "bye");
    state.ws = null;
    state.lastEventId = null;
    setStatus("offline", "offline");
  }

  function handleEvent(frame) {
    if (typeof frame.id === "string" && frame.id) state.lastEventId = frame.id;
    const data = frame.data || {};
    switch (frame.type) {
      case "message.created":
        onMessageCreated(data);
        break;
      case "message.updated":
        if (data.chatId === state.current && state.messages.has(data.id)) {
          state.messages.set(data.id, data);
          renderMessages({});
        }
        {
          const chat = state.chats.get(data.chatId);
          if (chat && chat.lastMessage && chat.lastMessage.id === data.id) {
            chat.lastMessage = data;
            renderChatList();
          }
        }
        break;
      case "message.deleted":
        if (data.chatId === state.current && state.messages.delete(data.id)) renderMessages({});
        reloadChatsSoon();
        break;
      case "member.removed":
        if (state.me && data.userId === state.me.id && data.chatId === state.current) closeChat();
        reloadChatsSoon();
        break;
      case "chat.created":
      case "chat.updated":
      case "member.added":
      case "read":
        reloadChatsSoon();
        break;
      case "typing":
        if (data.chatId === state.current && (!state.me || data.userId !== state.me.id)) showTyping(data.userId);
        break;
      case "resync.required":
        reloadChatsSoon();
        if (state.current != null) openChat(state.current);
        break;
      default:
        break; // presence, job.updated, pong: nothing to show
    }
  }

  function onMessageCreated(message) {
    const chat = state.chats.get(message.chatId);
    const mine = state.me && message.authorId === state.me.id;
    if (message.chatId === state.current) {
      state.messages.set(message.id, message);
      clearTimeout(state.typing.get(message.authorId));
      state.typing.delete(message.authorId);
      renderTyping();
      renderMessages({});
      markRead();
    } else if (chat && !mine) {
      chat.unreadCount = (chat.unreadCount || 0) + 1;
    }
    noteLastMessage(message);
  }

  function closeChat() {
    state.current = null;
    state.messages.clear();
    $("chat-pane").hidden = true;
    $("no-chat").hidden = false;
  }

  // ---------------------------------------------------------------- start

  function wire() {
    $("login-form").addEventListener("submit", onLogin);
    $("register-form").addEventListener("submit", onRegister);
    $("logout-button").addEventListener("click", onLogout);
    $("send-form").addEventListener("submit", onSend);
    $("message-input").addEventListener("keydown", onComposerKey);
    $("message-input").addEventListener("input", onComposerInput);
    $("load-older").addEventListener("click", loadOlder);
    $("new-chat-toggle").addEventListener("click", () => toggleNewChat());
    $("new-chat-form").addEventListener("submit", onNewChat);
    $("new-chat-form").addEventListener("change", onKindChange);
    document.addEventListener("visibilitychange", markRead);
  }

  async function start() {
    wire();
    try {
      const me = await api("users/me");
      // The cookie is still valid, but the CSRF token lived in the previous page's memory:
      // writes need a fresh sign-in.
      $("login-username").value = me.username;
      showAuth(null);
      $("login-password").focus();
    } catch (err) {
      showAuth(null);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
