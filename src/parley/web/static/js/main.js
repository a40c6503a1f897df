// Parley's web page: a cookie session with its CSRF token (asked again of the server after a
// reload, never kept only in the page), REST for history and writes, and one WebSocket for
// live events. No framework and no build step: modules straight from this folder.

import { api, apiUrl, markServerReached, setApiHooks, setCsrfToken } from "./api.js";
import { billingEnabled, cancelSubscription, loadBilling, onBillingUpdated } from "./billing.js";
import { createChatFromForm, loadChats, onKindChange, reloadChatsSoon, toggleNewChat } from "./chats.js";
import { $, clearNetworkErrors, showError } from "./dom.js";
import { loadJobs, onJobAction, onJobUpdated, showStoredPage, submitJob } from "./jobs.js";
import { LiveConnection } from "./live.js";
import {
  autoGrow,
  closeChat,
  loadOlder,
  markRead,
  onEditKey,
  onEditSubmit,
  onMessageAction,
  onMessageCreated,
  onMessageDeleted,
  onMessageUpdated,
  onTyping,
  openChat,
  reloadOpenChat,
  sendFromComposer,
} from "./messages.js";
import { resetState, state } from "./state.js";
import { leaveToList, parseRoute, showPane } from "./views.js";

const TYPING_SEND_EVERY_MS = 2000;
const SESSION_RETRY_MS = 3000;
const STATUS_TEXT = { connecting: "connecting…", live: "live", offline: "offline" };

const live = new LiveConnection(() => apiUrl("ws").href, {
  onEvent: handleEvent,
  onReady: ({ fresh }) => {
    markServerReached();
    serverReachable();
    if (fresh) refreshAll();
  },
  onStatus: (status) => {
    $("status").dataset.state = status;
    $("status").textContent = STATUS_TEXT[status];
  },
  onUnauthorized: () => sessionEnded(),
});
let lastTypingSent = 0;
let sessionRetry = null;

// ---------------------------------------------------------------- reachability

function serverReachable() {
  $("net-error").hidden = true;
  clearNetworkErrors();
}

function serverUnreachable() {
  $("net-error").hidden = false;
}

// ---------------------------------------------------------------- signing in and out

function showAuth(note) {
  live.stop();
  closeChat();
  resetState();
  setCsrfToken(null);
  $("chat-list").replaceChildren();
  $("job-list").replaceChildren();
  $("chat-view").hidden = true;
  $("session-bar").hidden = true;
  $("app-nav").hidden = true;
  $("auth-view").hidden = false;
  showError("login-error", note);
  $("login-username").focus();
}

function sessionEnded() {
  showAuth({ message: "Your session has ended. Please sign in again." });
}

/** Enter the app as `user`, writing with `csrfToken`. */
async function enterApp(user, csrfToken) {
  clearTimeout(sessionRetry);
  setCsrfToken(csrfToken);
  state.me = user;
  state.names.set(user.id, user.displayName);
  $("me-name").textContent = `${user.displayName} (@${user.username})`;
  $("me-name").title = `Signed in as @${user.username}`;
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("session-bar").hidden = false;
  $("app-nav").hidden = false;
  live.start();
  await Promise.all([loadChats().catch((err) => showError("new-chat-error", err)), loadBilling()]);
  await route();
}

/** Resume the browser session behind the cookie, if there is one. */
async function resumeSession() {
  if (state.me) return;
  try {
    const session = await api("auth/session");
    await enterApp(session.user, session.csrfToken);
  } catch (err) {
    // The server is down or unreachable: keep asking, with the sign-in form meanwhile (left
    // alone once shown, since someone may be typing in it).
    if (err.status === 0) sessionRetry = setTimeout(resumeSession, SESSION_RETRY_MS);
    if ($("auth-view").hidden) showAuth(null);
  }
}

async function login(username, password, otp) {
  const form = { username, password };
  if (otp) form.otp = otp;
  const session = await api("auth/login", { method: "POST", form });
  // The cookie is set; the server tells the same session's user and token to a reload too.
  const resumed = await api("auth/session");
  await enterApp(resumed.user, session.csrfToken);
}

async function onLogin(event) {
  event.preventDefault();
  showError("login-error", null);
  const otp = $("login-otp").value.trim();
  try {
    await login($("login-username").value.trim(), $("login-password").value, otp);
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
  live.stop(); // the server closes this session's sockets: not news to this window
  try {
    await api("auth/logout-session", { method: "POST" });
  } catch (err) {
    // the cookie may already be gone; the page forgets the session either way
  }
  history.replaceState(null, "", "#/");
  showAuth(null);
}

// ---------------------------------------------------------------- views

/** Show the view the address names. */
async function route() {
  if (!state.me) return;
  const target = parseRoute(location.hash);
  if (target.view !== "chat" && state.current != null) closeChat();
  switch (target.view) {
    case "chat":
      showPane("chat-pane", "chat");
      if (!(await openChat(target.id))) {
        closeChat();
        leaveToList();
      }
      break;
    case "pages":
      showPane("jobs-pane", "pages");
      if (!state.jobsLoaded) await loadJobs();
      break;
    case "page":
      showPane("page-pane", "page");
      await showStoredPage(target.id);
      break;
    case "billing":
      if (!billingEnabled()) {
        leaveToList();
        break;
      }
      showPane("billing-pane", "billing");
      break;
    default:
      showPane("no-chat", "chats");
  }
}

/** After a gap the live connection could not fill: fetch what is on screen again. */
function refreshAll() {
  reloadChatsSoon();
  if (state.current != null) reloadOpenChat();
  if (state.jobsLoaded) loadJobs();
  loadBilling();
}

// ---------------------------------------------------------------- live events

function handleEvent(frame) {
  const data = frame.data || {};
  if (frame.type !== "typing" && frame.type !== "presence") state.liveChanges += 1;
  switch (frame.type) {
    case "message.created":
      onMessageCreated(data);
      break;
    case "message.updated":
      onMessageUpdated(data);
      break;
    case "message.deleted":
      onMessageDeleted(data);
      break;
    case "member.removed":
      if (state.me && data.userId === state.me.id && data.chatId === state.current) {
        closeChat();
        leaveToList();
      }
      reloadChatsSoon();
      break;
    case "chat.created":
    case "chat.updated":
    case "member.added":
    case "read":
      reloadChatsSoon();
      break;
    case "typing":
      onTyping(data);
      break;
    case "job.updated":
      onJobUpdated(data);
      break;
    case "billing.updated":
      onBillingUpdated(data);
      break;
    default:
      break; // presence: nothing shows it yet
  }
}

// ---------------------------------------------------------------- the composer

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("send-form").requestSubmit();
  }
}

function onComposerInput() {
  autoGrow();
  const now = Date.now();
  if (state.current == null || now - lastTypingSent < TYPING_SEND_EVERY_MS) return;
  if (live.send({ type: "typing", chatId: state.current })) lastTypingSent = now;
}

// ---------------------------------------------------------------- start

function wire() {
  setApiHooks({ reachable: serverReachable, unreachable: serverUnreachable, sessionEnded });
  $("login-form").addEventListener("submit", onLogin);
  $("register-form").addEventListener("submit", onRegister);
  $("logout-button").addEventListener("click", onLogout);
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFromComposer();
  });
  $("message-input").addEventListener("keydown", onComposerKey);
  $("message-input").addEventListener("input", onComposerInput);
  $("message-list").addEventListener("click", onMessageAction);
  $("message-list").addEventListener("submit", onEditSubmit);
  $("message-list").addEventListener("keydown", onEditKey);
  $("load-older").addEventListener("click", loadOlder);
  $("new-chat-toggle").addEventListener("click", () => toggleNewChat());
  $("new-chat-form").addEventListener("change", onKindChange);
  $("new-chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const chatId = await createChatFromForm();
      location.hash = `#/chat/${chatId}`;
    } catch (err) {
      showError("new-chat-error", err);
    }
  });
  $("job-form").addEventListener("submit", submitJob);
  $("job-list").addEventListener("click", onJobAction);
  $("load-older-jobs").addEventListener("click", () => loadJobs({ more: true }));
  $("billing-cancel").addEventListener("click", cancelSubscription);
  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => live.retryNow());
  window.addEventListener("offline", () => live.networkLost());
  document.addEventListener("visibilitychange", () => {
    markRead();
    if (document.visibilityState === "visible") live.retryNow();
  });
}

wire();
resumeSession();
