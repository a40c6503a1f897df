// The live connection: one WebSocket, resumed by event id after any disconnect, and a
// heartbeat so that "live" is never a lie for long. A socket can look open long after the
// network or the server is gone (a suspended laptop, a dropped NAT entry, a frozen
// process): every HEARTBEAT_EVERY_MS the page sends {"type":"ping"}, and a socket that then
// stays silent for PONG_TIMEOUT_MS is given up and replaced. So the badge turns "offline"
// at most HEARTBEAT_EVERY_MS + PONG_TIMEOUT_MS (20 s) after the last sign of life.

export const HEARTBEAT_EVERY_MS = 10_000;
export const PONG_TIMEOUT_MS = 10_000;
// A handshake (and the replay before `ready`) that takes longer is given up and retried.
export const CONNECT_TIMEOUT_MS = 15_000;
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 15_000;
const UNAUTHORIZED_CLOSE_CODE = 4401;

/**
 * Handlers (all optional):
 * - `onEvent(frame)`: every event frame, in order, exactly once (replayed ones first).
 * - `onReady({ fresh })`: the socket is live; `fresh` when nothing could be resumed (the first
 *   connection, or after `resync.required`): state must then be refetched by REST.
 * - `onStatus(state)`: "connecting" | "live" | "offline".
 * - `onUnauthorized()`: the server refused the session.
 */
export class LiveConnection {
  constructor(url, handlers) {
    this.url = url; // a function returning the socket URL without lastEventId
    this.handlers = handlers;
    this.ws = null;
    this.wanted = false;
    this.lastEventId = null;
    this.resumed = false; // the current socket asked to resume from lastEventId
    this.resyncing = false;
    this.status = "offline";
    this.delay = RECONNECT_FIRST_MS;
    this.reconnectTimer = null;
    this.heartbeatTimer = null;
    this.pongTimer = null;
    this.connectTimer = null;
  }

  /** Connect, and stay connected until `stop`. */
  start() {
    this.wanted = true;
    this.delay = RECONNECT_FIRST_MS;
    this.setStatus("connecting");
    this.connect();
  }

  /** Disconnect for good and forget the position (signing out). */
  stop() {
    this.wanted = false;
    this.drop();
    this.lastEventId = null;
    this.setStatus("offline");
  }

  /** Send a client frame; false when there is no open socket. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** The network is back (or may be): try at once instead of waiting for the backoff. */
  retryNow() {
    if (!this.wanted || this.status === "live") return;
    this.delay = RECONNECT_FIRST_MS;
    this.drop();
    this.connect();
  }

  /** The browser says the network is gone: believe it now rather than after a heartbeat. */
  networkLost() {
    if (!this.wanted) return;
    this.lost();
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    if (this.handlers.onStatus) this.handlers.onStatus(status);
  }

  socketUrl() {
    const url = new URL(this.url());
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.lastEventId) url.searchParams.set("lastEventId", this.lastEventId);
    return url.href;
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    if (!this.wanted || this.ws) return;
    const ws = new WebSocket(this.socketUrl());
    this.ws = ws;
    this.resumed = this.lastEventId !== null;
    this.connectTimer = setTimeout(() => this.lost(), CONNECT_TIMEOUT_MS);
    ws.onmessage = (event) => this.onFrame(ws, event.data);
    ws.onclose = (event) => this.onClose(ws, event);
  }

  onFrame(ws, raw) {
    if (ws !== this.ws) return;
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (err) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    this.heard();
    const data = frame.data || {};
    switch (frame.type) {
      case "pong":
        return;
      case "resync.required":
        this.resyncing = true; // the events after our id are lost: refetch once ready
        return;
      case "ready": {
        clearTimeout(this.connectTimer);
        // The position live events follow: where to resume if no event comes before the next
        // disconnect. Replayed events (if any) came before it and are older.
        if (typeof data.lastEventId === "string" && data.lastEventId) this.lastEventId = data.lastEventId;
        const fresh = !this.resumed || this.resyncing;
        this.resyncing = false;
        this.delay = RECONNECT_FIRST_MS;
        this.setStatus("live");
        if (this.handlers.onReady) this.handlers.onReady({ fresh });
        return;
      }
      default:
        if (typeof frame.id === "string" && frame.id) this.lastEventId = frame.id;
        if (this.handlers.onEvent) this.handlers.onEvent(frame);
    }
  }

  /** Any frame is a sign of life: the next ping is due a full interval from now. */
  heard() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => this.ping(), HEARTBEAT_EVERY_MS);
  }

  ping() {
    if (!this.send({ type: "ping" })) return;
    this.pongTimer = setTimeout(() => this.lost(), PONG_TIMEOUT_MS);
  }

  onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.clearTimers();
    if (!this.wanted) return;
    if (event.code === UNAUTHORIZED_CLOSE_CODE) {
      this.stop();
      if (this.handlers.onUnauthorized) this.handlers.onUnauthorized();
      return;
    }
    this.setStatus("offline");
    this.scheduleReconnect();
  }

  /** Give up on the current socket (silent, or the network is gone) and try again later. */
  lost() {
    this.drop();
    if (!this.wanted) return;
    this.setStatus("offline");
    this.scheduleReconnect();
  }

  /** Let go of the socket without waiting for a close handshake that may never come. */
  drop() {
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(1000, "bye");
    } catch (err) {
      // already closing
    }
  }

  clearTimers() {
    for (const name of ["reconnectTimer", "heartbeatTimer", "pongTimer", "connectTimer"]) {
      clearTimeout(this[name]);
      this[name] = null;
    }
  }

  scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    const delay = this.delay * (0.5 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, RECONNECT_MAX_MS);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
