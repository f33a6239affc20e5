// The WebSocket to chip: reconnects by itself with capped exponential backoff and jitter, and
// treats the browser's `offline` as a dropped socket (a socket can take a minute to notice).

const RETRY_MIN = 1000;
const RETRY_MAX = 30000;

/** Milliseconds to wait before attempt number `attempt` (0-based): full jitter over the upper half. */
export function backoff(attempt) {
  const cap = Math.min(RETRY_MAX, RETRY_MIN * 2 ** Math.min(attempt, 16));
  return cap / 2 + Math.random() * (cap / 2);
}

export class Connection {
  /** on: {state(name), open(), closed(), event(object)} */
  constructor(url, on) {
    this.url = url;
    this.on = on;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    addEventListener("online", () => { this.attempt = 0; this.open(); });
    addEventListener("offline", () => this.drop());
  }

  open() {
    clearTimeout(this.timer);
    if (this.ws) return;
    if (navigator.onLine === false) { this.on.state("offline"); return; }
    this.on.state(this.attempt ? "reconnecting" : "connecting");
    const ws = this.ws = new WebSocket(this.url);
    ws.onopen = () => this.on.open();
    ws.onmessage = (e) => {
      let event;
      try { event = JSON.parse(e.data); } catch (err) { return; }
      if (event && typeof event.type === "string") this.on.event(event);
    };
    ws.onclose = () => { if (this.ws === ws) this.lost(); };
  }

  lost() {
    this.ws = null;
    this.on.closed();
    this.on.state("offline");
    this.timer = setTimeout(() => this.open(), backoff(this.attempt++));
  }

  /** The network is gone: close now, and reconnect when the browser says it is back. */
  drop() {
    clearTimeout(this.timer);
    const ws = this.ws;
    if (ws) {
      this.ws = null;
      ws.onclose = null;
      ws.close();
      this.on.closed();
    }
    this.on.state("offline");
  }

  /** Start over after chip refused something on an unbound socket (the backoff applies). */
  restart() {
    if (this.ws) this.ws.close();
  }

  /** chip will never take this chat (its contact was blocked): close, and do not come back. */
  stop() {
    clearTimeout(this.timer);
    this.open = () => {};
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onclose = null; ws.close(); }
    this.on.state("offline");
  }

  /** A chat is bound: the next loss starts its backoff afresh. */
  settled() { this.attempt = 0; }

  send(command) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(command));
    return true;
  }
}
