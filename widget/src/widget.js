// The widget: chip's protocol (shared/spec/protocol.md §1) behind a launcher and a panel.
//
// Commands whose outcome the visitor sees run one at a time from a queue (`ops`), so an `error`
// event is always the answer to the one in flight: chip answers a socket's commands in order.
// `send_msg` and `set_email` have no reply when they succeed, so each is followed by a second
// `start_chat`, which on a bound socket only answers `chat_resumed`: that answer with no `error`
// before it means the message was taken. What the visitor types while offline waits in the same
// queue and goes out once, in order, when the chat is bound again.
import { Alerts } from "./alerts.js";
import { accentColors } from "./colors.js";
import { Connection } from "./connection.js";
import { el } from "./dom.js";
import { EmailForm } from "./email.js";
import { isRtl, locale, translator } from "./i18n.js";
import { Messages } from "./messages.js";
import styles from "./styles.css";
import { build, focusable, Lightbox } from "./view.js";

const PAGE = 25;          // chip answers get_history with at most this many messages
const SETTLE = 10000;     // ms to wait for chip's answer to a command before calling it failed
const SURFACES = { light: "#ffffff", dark: "#1b2220" };

function storage(kind) {
  try { return window[kind]; } catch (e) { return null; }  // storage can be blocked by the browser
}
const read = (kind, key) => { try { return storage(kind).getItem(key); } catch (e) { return null; } };
const write = (kind, key, value) => { try { storage(kind).setItem(key, value); } catch (e) { /* not kept */ } };

export class Widget {
  constructor(o) {
    this.o = o;
    this.t = translator(o.lang);
    this.key = "chip.chat." + o.socketUrl;
    this.chatId = read("localStorage", this.key);
    this.seen = new Set();      // "out:<id>" / "in:<id>" of every message shown: chip delivers at least once
    this.oldest = null;         // time of the oldest message from chip shown: get_history's `before`
    this.historyLoaded = false;
    this.historyDone = false;
    this.bound = false;
    this.ops = [];
    this.current = null;
    this.listeners = {};
    this.isOpen = false;
    this.v = build(o, this.t);
    this.alerts = new Alerts(this.v, this.t, o.sound);
    this.lightbox = new Lightbox(this.v);
    this.emailForm = new EmailForm(this.v, this.t);
    this.messages = new Messages(o, this.t, locale(o.lang, navigator.languages),
      (url, alt, from) => this.lightbox.open(url, alt, from));
    this.wire();
    this.conn = new Connection(o.socketUrl, {
      state: (s) => this.setState(s), open: () => this.hello(), closed: () => this.disconnected(),
      event: (e) => this.handle(e),
    });
  }

  mount() {
    this.host = document.createElement("chip-widget");
    const shadow = this.shadow = this.host.attachShadow({ mode: "open" });
    if (shadow.adoptedStyleSheets && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(styles);
      shadow.adoptedStyleSheets = [sheet];
    } else {
      shadow.append(el("style", { text: styles }));  // older browsers; needs style-src 'unsafe-inline'
    }
    const root = this.v.root;
    root.setAttribute("dir", isRtl(this.o.lang) ? "rtl" : "ltr");
    root.setAttribute("lang", this.o.lang);
    this.theme();
    if (this.o.welcome) this.v.thread.insertBefore(this.messages.welcome(), this.v.list);
    shadow.append(root);
    document.body.append(this.host);
    if (this.o.open || read("sessionStorage", this.key + ".open") === "1") this.open(false);
    this.conn.open();
  }

  theme() {
    const query = matchMedia("(prefers-color-scheme: dark)");
    const apply = () => {
      const dark = this.o.theme === "dark" || (this.o.theme !== "light" && query.matches);
      this.v.root.classList.toggle("dark", dark);
      const colors = accentColors(this.o.color, SURFACES[dark ? "dark" : "light"]) || {};
      for (const [name, value] of Object.entries(colors)) this.v.root.style.setProperty(name, value);
    };
    query.addEventListener("change", apply);
    apply();
  }

  wire() {
    const v = this.v;
    v.launcher.addEventListener("click", () => (this.isOpen ? this.close(true) : this.open(true)));
    v.closeButton.addEventListener("click", () => this.close(true));
    v.composer.addEventListener("submit", (e) => { e.preventDefault(); this.sendText(v.input.value); });
    v.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.sendText(v.input.value); }
    });
    v.email.addEventListener("submit", (e) => { e.preventDefault(); this.setEmail(v.emailInput.value); });
    v.thread.addEventListener("scroll", () => { if (v.thread.scrollTop < 40) this.loadOlder(); });
    v.root.addEventListener("keydown", (e) => this.keydown(e));
    v.root.addEventListener("pointerdown", () => this.alerts.audio(), { once: true });
    document.addEventListener("visibilitychange", () => { if (!document.hidden && this.isOpen) this.alerts.read(); });
  }

  // the JavaScript API: chip("open"), chip("close"), chip("setEmail", email), chip("on", "message", fn)

  call(command, args) {
    const commands = {
      open: () => this.open(true), close: () => this.close(false), toggle: () => (this.isOpen ? this.close(false) : this.open(true)),
      setEmail: (email) => this.setEmail(email),
      on: (name, fn) => { if (typeof fn === "function") (this.listeners[name] = this.listeners[name] || []).push(fn); },
      off: (name, fn) => { this.listeners[name] = (this.listeners[name] || []).filter((f) => f !== fn); },
    };
    if (!commands[command]) { console.warn(`chip: unknown command ${String(command)}`); return undefined; }
    return commands[command](...args);
  }

  emit(name, detail) {
    for (const fn of this.listeners[name] || []) {
      try { fn(detail); } catch (e) { console.error("chip: a listener for", name, "failed:", e); }
    }
  }

  open(focus) {
    const v = this.v;
    if (!this.isOpen) {
      this.isOpen = true;
      v.panel.hidden = false;
      v.root.classList.add("open");
      v.launcher.setAttribute("aria-expanded", "true");
      write("sessionStorage", this.key + ".open", "1");
      this.alerts.read();
      this.scrollToBottom();
      this.fillThread();
      this.emit("open");
    }
    if (focus) v.input.focus();
  }

  close(focusLauncher) {
    const v = this.v;
    if (!this.isOpen) return;
    this.isOpen = false;
    this.lightbox.close(false);
    v.panel.hidden = true;
    v.root.classList.remove("open");
    v.launcher.setAttribute("aria-expanded", "false");
    write("sessionStorage", this.key + ".open", "0");
    if (focusLauncher) v.launcher.focus();
    this.emit("close");
  }

  keydown(e) {
    const lightbox = this.lightbox.isOpen;
    if (e.key === "Escape") {
      if (lightbox) this.lightbox.close(true);
      else if (this.isOpen) this.close(true);
      return;
    }
    if (e.key !== "Tab" || !this.isOpen) return;
    // focus stays in the open panel (or the lightbox on top of it)
    const stops = focusable(lightbox ? this.v.lightbox : this.v.panel);
    if (!stops.length) return;
    const first = stops[0], last = stops[stops.length - 1], at = this.shadow.activeElement;
    if (e.shiftKey && (at === first || !stops.includes(at))) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && (at === last || !stops.includes(at))) { e.preventDefault(); first.focus(); }
  }

  setState(state) {
    this.v.root.setAttribute("data-state", state);
    this.v.status.textContent = this.t(state);
    this.v.offline.hidden = state !== "offline";
  }

  // the socket

  hello() {
    this.conn.send(this.chatId ? { type: "start_chat", chat_id: this.chatId } : { type: "start_chat" });
  }

  disconnected() {
    this.bound = false;
    clearTimeout(this.settleTimer);
    const op = this.current;
    this.current = null;
    if (!op) return;
    // a message written to a socket that then closed may or may not have reached chip: the
    // visitor decides whether to send it again; a history page or an email is simply asked again
    if (op.kind === "send") this.mark(op, "failed");
    else this.ops.unshift(op);
  }

  handle(e) {
    if (e.type === "chat_started" || e.type === "chat_resumed") {
      if (this.bound) this.answered(null); else this.bind(e);
      this.keepEmail(e.email);
    } else if (e.type === "chat_out") this.chatOut(e.msg_out);
    else if (e.type === "history") this.history(Array.isArray(e.history) ? e.history : []);
    else if (e.type === "error") this.refused(e);
  }

  bind(e) {
    if (e.type === "chat_started" && this.chatId && this.chatId !== e.chat_id) this.reset();  // that chat is gone
    this.chatId = e.chat_id;
    write("localStorage", this.key, this.chatId);
    this.bound = true;
    this.conn.settled();
    this.setState("online");
    if (e.type === "chat_resumed") {
      if (e.email && !this.v.emailInput.value) this.emailSaved(e.email);
      // `before` a day ahead, so that a clock behind chip's hides nothing (repeats are skipped)
      if (!this.historyLoaded && !this.ops.some((op) => op.kind === "history")) {
        this.ops.unshift({ kind: "history", before: new Date(Date.now() + 86400000).toISOString() });
      }
    } else {
      this.historyLoaded = this.historyDone = true;  // a new chat has no history
    }
    this.emit("ready", { chat_id: this.chatId });
    this.pump();
  }

  pump() {
    if (!this.bound || this.current || !this.ops.length) return;
    const op = this.current = this.ops.shift();
    op.errors = [];
    const sent = op.kind === "history" ? this.conn.send({ type: "get_history", before: op.before })
      : this.conn.send(op.kind === "send" ? { type: "send_msg", text: op.text } : { type: "set_email", email: op.email })
        && this.conn.send({ type: "start_chat" });
    if (!sent) { this.current = null; this.ops.unshift(op); return; }
    if (op.kind === "history") this.v.older.textContent = this.t("loadingOlder");
    this.settleTimer = setTimeout(() => this.answered(op.errors[0] || { code: "unavailable" }), SETTLE);
  }

  /** The command in flight is done: taken (error null) or refused. */
  answered(error) {
    const op = this.current;
    if (!op) return;
    clearTimeout(this.settleTimer);
    this.current = null;
    error = error || op.errors[0] || null;
    if (op.kind === "send") {
      this.mark(op, error ? "failed" : "sent");
      if (error) this.notify(error);
    } else if (op.kind === "email") {
      if (error) this.emailForm.refused(error, this.explain(error)); else this.emailSaved(op.email);
    } else if (error) {
      this.v.older.textContent = "";
      this.notify(error);
    }
    this.pump();
  }

  refused(e) {
    const op = this.current;
    if (!this.bound && e.code === "forbidden") {
      this.notify(e, true);
      this.conn.stop();  // the chat was blocked: every try would be refused the same way
    } else if (!this.bound) {
      this.notify(e);
      this.conn.restart();  // start_chat was refused (rate limited, a store down): try again later
    } else if (op && op.kind === "history") {
      this.answered(e);
    } else if (op) {
      op.errors.push(e);
      if (op.errors.length > 1) this.answered(e);  // the command and the start_chat after it both refused
    }
  }

  // what chip sends

  chatOut(msg) {
    if (!msg || msg.id === undefined) return;
    if (!this.seen.has("out:" + msg.id)) {
      const stick = this.atBottom();
      this.v.list.append(this.renderOut(msg));
      this.noteTime(msg.time);
      this.updateQuick();
      if (stick || !this.isOpen) this.scrollToBottom();
      const name = msg.user ? msg.user.name : this.o.title;
      this.alerts.announce(this.t("newMessage", { name, text: msg.text || this.t("image", { name }) }));
      if (!this.isOpen || document.hidden) this.alerts.arrived();
      this.emit("message", JSON.parse(JSON.stringify(msg)));
    }
    // acked once shown, and again when repeated: chip pushes again when an earlier ack was lost
    this.conn.send({ type: "ack_chat", msg_id: msg.id });
  }

  history(items) {
    if (this.current && this.current.kind === "history") this.answered(null);
    const v = this.v, first = !this.historyLoaded;
    this.historyLoaded = true;
    const height = v.thread.scrollHeight, top = v.thread.scrollTop;
    const fragment = document.createDocumentFragment();
    for (const item of items.slice().reverse()) {  // newest first -> oldest at the top
      const msg = item.msg_out || item.msg_in;
      if (!msg) continue;
      if (item.msg_out && !this.seen.has("out:" + msg.id)) fragment.append(this.renderOut(msg));
      if (item.msg_in && !this.seen.has("in:" + msg.id)) {
        this.seen.add("in:" + msg.id);
        fragment.append(this.messages.in(msg.text, msg.time));
      }
      this.noteTime(msg.time);
    }
    v.list.insertBefore(fragment, v.list.firstChild);
    this.historyDone = items.length < PAGE;
    v.older.textContent = this.historyDone && v.list.children.length ? this.t("start") : "";
    this.updateQuick();
    if (first) this.scrollToBottom();
    else v.thread.scrollTop = top + (v.thread.scrollHeight - height);  // keep what the visitor was reading
    this.fillThread();
  }

  // what the visitor does

  sendText(text) {
    text = String(text || "").trim();
    if (!text) return;
    const op = { kind: "send", text, item: this.messages.in(text, null) };
    this.v.list.append(op.item);
    this.mark(op, "sending");
    this.v.input.value = "";
    this.v.quick.replaceChildren();
    this.v.quick.hidden = true;
    this.scrollToBottom();
    this.ops.push(op);
    this.pump();
  }

  setEmail(email) {
    email = this.emailForm.check(email);
    if (!email) return false;
    this.ops.push({ kind: "email", email });
    this.pump();
    return true;
  }

  /** Where the address the visitor saved for this chat is kept. */
  get emailKey() { return `chip.email.${this.o.socketUrl}.${this.chatId}`; }

  /** Courier resets the URN's display, where chip keeps the email, on every message the visitor
   * sends (protocol §3): when chip reports another email than the one the visitor saved, save it again. */
  keepEmail(reported) {
    const saved = read("localStorage", this.emailKey);
    if (saved && reported !== saved && !this.ops.some((op) => op.kind === "email")
        && !(this.current && this.current.kind === "email")) {
      this.ops.push({ kind: "email", email: saved });
      this.pump();
    }
  }

  emailSaved(email) {
    write("localStorage", this.emailKey, email);
    this.emailForm.saved(email);
    this.emit("email", email);
  }

  loadOlder() {
    if (this.bound && this.historyLoaded && !this.historyDone && this.oldest
        && !this.ops.some((op) => op.kind === "history") && !(this.current && this.current.kind === "history")) {
      this.ops.push({ kind: "history", before: this.oldest });
      this.pump();
    }
  }

  /** Page back while the open thread is too short to scroll. */
  fillThread() {
    const thread = this.v.thread;
    if (this.isOpen && thread.scrollHeight <= thread.clientHeight) this.loadOlder();
  }

  // rendering

  renderOut(msg) {
    this.seen.add("out:" + msg.id);
    return this.messages.out(msg);
  }

  mark(op, status) {
    this.messages.status(op.item, status, () => {
      this.mark(op, "sending");
      this.ops.push(op);
      this.pump();
    });
  }

  updateQuick() {
    // only the newest message's quick replies are offered, as in any chat app
    const quick = this.v.quick, last = this.v.list.lastElementChild;
    const replies = (last && last.quickReplies) || [];
    quick.replaceChildren(...replies.map((text) => el("button", { type: "button", text, onclick: () => this.sendText(text) })));
    quick.hidden = !replies.length;
  }

  /** Show why chip refused something; for a few seconds, or until the page goes if `lasting`. */
  notify(error, lasting = false) {
    const v = this.v;
    v.notice.textContent = this.explain(error);
    v.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    if (!lasting) this.noticeTimer = setTimeout(() => { v.notice.hidden = true; }, 8000);
  }

  explain(error) {
    return ["unavailable", "rate_limited", "too_large", "forbidden"].includes(error.code) ? this.t(error.code)
      : this.t("error", { error: String(error.error || error.code) });
  }

  noteTime(time) {
    if (time && (!this.oldest || time < this.oldest)) this.oldest = time;
  }

  reset() {
    // what the visitor typed and is still to be sent stays: it goes to the new chat
    this.v.list.replaceChildren(...this.ops.filter((op) => op.kind === "send").map((op) => op.item));
    this.updateQuick();
    this.seen.clear();
    this.oldest = null;
    this.historyLoaded = false;
  }

  atBottom() {
    const t = this.v.thread;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 60;
  }

  scrollToBottom() {
    const thread = this.v.thread;
    thread.scrollTop = thread.scrollHeight;
    // images load later and grow the thread: follow them down
    for (const img of thread.querySelectorAll("img:not([data-followed])")) {
      img.setAttribute("data-followed", "");
      img.addEventListener("load", () => { thread.scrollTop = thread.scrollHeight; });
    }
  }
}
