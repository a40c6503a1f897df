// What the page knows, shared by its modules. Cleared on sign-out, so that nothing of one
// account is left for the next.

export const state = {
  me: null, // the User
  chats: new Map(), // id -> ChatSummary (with members, lastMessage, unreadCount)
  names: new Map(), // userId -> display name
  current: null, // id of the open chat
  messages: new Map(), // id -> Message, for the open chat
  nextCursor: null, // older messages of the open chat
  lastReadSent: new Map(), // chatId -> newest messageId marked read
  editing: null, // { id, draft, caret } of the message being edited
  confirmingDelete: null, // id of the message whose deletion awaits confirmation
  jobs: new Map(), // id -> Job
  jobsLoaded: false,
  jobsCursor: null,
  billing: null, // the Billing object, or null while billing is off
  liveChanges: 0, // live events that changed what the page shows, counted since it loaded
};

// A list fetched by REST races the live events: the server may read it just before a change
// whose event the page then shows before the list's answer arrives, and the list would put
// the old state back for good. So each fetch notes how many live changes the page had seen;
// an answer that is no longer the latest fetch of its kind is dropped, and one during whose
// flight a live change came is shown and fetched again (the next answer has the change).
const latestFetch = new Map(); // kind -> number of its latest fetch
const REFETCH_DELAY_MS = 150;

/** `fetch`, called shortly after the last of a burst of calls: several events in a row
 * (or an answer that missed one) cost one request. */
export function soon(fetch) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fetch(...args), REFETCH_DELAY_MS);
  };
}

/** Start fetching a snapshot of `kind` ("chats", "jobs", "messages" of the open chat). */
export function startSnapshot(kind) {
  const number = (latestFetch.get(kind) || 0) + 1;
  latestFetch.set(kind, number);
  const changes = state.liveChanges;
  return {
    /** False once a later fetch of the same kind has started: its answer is newer. */
    isLatest: () => latestFetch.get(kind) === number,
    /** True when a live change came while this one was fetched: it may predate it. */
    missedChanges: () => state.liveChanges !== changes,
  };
}

/** Forget everything about the signed-in user. */
export function resetState() {
  state.me = null;
  state.chats.clear();
  state.names.clear();
  state.current = null;
  state.messages.clear();
  state.nextCursor = null;
  state.lastReadSent.clear();
  state.editing = null;
  state.confirmingDelete = null;
  state.jobs.clear();
  state.jobsLoaded = false;
  state.jobsCursor = null;
  state.billing = null;
}

/** "You" for the signed-in user, else the member's display name. */
export function nameOf(userId) {
  if (state.me && userId === state.me.id) return "You";
  return state.names.get(userId) || `user ${userId}`;
}

/** A chat's title, or the other members' names for a direct chat. */
export function chatName(chat) {
  if (chat.title) return chat.title;
  const others = (chat.members || []).filter((m) => !state.me || m.userId !== state.me.id);
  return others.map((m) => m.displayName || m.username).join(", ") || "(just you)";
}

/** True when the signed-in user owns `chatId` (and so may delete anyone's messages). */
export function ownsChat(chatId) {
  const chat = state.chats.get(chatId);
  if (!chat || !state.me) return false;
  return (chat.members || []).some((m) => m.userId === state.me.id && m.role === "owner");
}
