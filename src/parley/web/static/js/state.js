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
};

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
