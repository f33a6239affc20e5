/* Chip chat widget: one dependency-free file speaking chip's WebSocket protocol
 * (shared/spec/protocol.md §1). Mount it with ChipChat.mount(element, options):
 *   options.socketUrl  ws(s)://host/wc/connect/<channel>/        (required)
 *   options.title      name shown in the header and next to bot messages
 *   options.logo       image for the header and the bot's avatar
 * The chat ID is kept in localStorage so a reload resumes the conversation.
 */
(function () {
  "use strict";

  var HISTORY_PAGE = 25;            // chip answers get_history with at most this many messages
  var RETRY_MIN = 1000, RETRY_MAX = 30000;
  var FRIENDLY = {
    unavailable: "We couldn't reach the team just now. Please try again in a moment.",
    rate_limited: "You're sending messages a little too fast. Please wait a moment.",
    too_large: "That message is too long to send.",
    chat_not_started: "The chat is still connecting. Please try again in a moment."
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(iso) {
    var when = iso ? new Date(iso) : new Date();
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function initials(name) {
    return (name || "?").split(/\s+/).map(function (p) { return p.charAt(0); }).join("").slice(0, 2).toUpperCase();
  }

  function ChipChat(root, options) {
    this.root = root;
    this.options = options;
    this.storageKey = "chip.chat." + options.socketUrl;
    this.chatId = localStorage.getItem(this.storageKey);
    this.seen = {};                 // "out:<id>" / "in:<id>" of every message shown: chip delivers at least once
    this.oldest = null;             // time of the oldest message from chip shown, for get_history's `before`
    this.historyDone = false;
    this.loadingHistory = false;
    this.attempt = 0;
    this.bound = false;
    this.build();
    this.connect();
  }

  ChipChat.prototype.build = function () {
    var self = this, o = this.options;
    this.root.classList.add("chip-widget");
    var panel = el("section", "chip-panel");
    panel.setAttribute("aria-label", "Chat with " + o.title);

    var header = el("header", "chip-header");
    var logo = el("img", "chip-header-logo"); logo.src = o.logo; logo.alt = "";
    var heading = el("div", "chip-heading");
    heading.appendChild(el("div", "chip-title", o.title));
    this.status = el("button", "chip-status");
    this.status.type = "button";
    this.status.title = "Connection";
    this.status.addEventListener("click", function () { if (!self.ws) self.connect(); });
    heading.appendChild(this.status);
    var close = el("button", "chip-close", "\u2013"); close.type = "button"; close.setAttribute("aria-label", "Minimise chat");
    close.addEventListener("click", function () { self.root.classList.add("chip-closed"); });
    header.append(logo, heading, close);

    this.emailForm = el("form", "chip-email");
    this.emailForm.noValidate = true;  // chip validates the address and says so in an `error` event
    var emailLabel = el("label", "chip-email-label", "Get replies by email");
    this.emailInput = el("input", "chip-email-input");
    this.emailInput.type = "email"; this.emailInput.placeholder = "you@example.com"; this.emailInput.name = "email";
    emailLabel.appendChild(this.emailInput);
    this.emailButton = el("button", "chip-email-save", "Save"); this.emailButton.type = "submit";
    this.emailForm.append(emailLabel, this.emailButton);
    this.emailForm.addEventListener("submit", function (e) { e.preventDefault(); self.saveEmail(); });

    this.thread = el("div", "chip-thread");
    this.thread.setAttribute("role", "log");
    this.thread.setAttribute("aria-live", "polite");
    this.older = el("div", "chip-older");
    this.list = el("ol", "chip-messages");
    this.thread.append(this.older, this.list);
    this.thread.addEventListener("scroll", function () {
      if (self.thread.scrollTop < 40) self.loadOlder();
    });

    this.notice = el("div", "chip-notice");
    this.notice.setAttribute("role", "alert");
    this.notice.hidden = true;
    this.quick = el("div", "chip-quick-replies");

    this.composer = el("form", "chip-composer");
    this.input = el("textarea", "chip-input");
    this.input.rows = 1; this.input.placeholder = "Write a message\u2026"; this.input.setAttribute("aria-label", "Message");
    this.send = el("button", "chip-send"); this.send.type = "submit"; this.send.setAttribute("aria-label", "Send");
    this.send.innerHTML = '<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true"><path fill="currentColor" d="M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z"/></svg>';
    this.composer.append(this.input, this.send);
    this.composer.addEventListener("submit", function (e) { e.preventDefault(); self.sendText(self.input.value); });
    this.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); self.sendText(self.input.value); }
    });

    var credit = el("div", "chip-credit", "Powered by chip");
    panel.append(header, this.emailForm, this.thread, this.notice, this.quick, this.composer, credit);

    var launcher = el("button", "chip-launcher"); launcher.type = "button"; launcher.setAttribute("aria-label", "Open chat");
    launcher.innerHTML = '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
    launcher.addEventListener("click", function () { self.root.classList.toggle("chip-closed"); });
    this.root.append(panel, launcher);
    this.setState("connecting");
  };

  // connection: start/resume on open, reconnect with capped, jittered backoff on close

  ChipChat.prototype.connect = function () {
    var self = this;
    clearTimeout(this.retryTimer);
    this.setState(this.attempt ? "reconnecting" : "connecting");
    var ws = this.ws = new WebSocket(this.options.socketUrl);
    ws.onopen = function () {
      self.command(self.chatId ? { type: "start_chat", chat_id: self.chatId } : { type: "start_chat" });
    };
    ws.onmessage = function (e) {
      var event;
      try { event = JSON.parse(e.data); } catch (err) { return; }
      var handler = self["on_" + event.type];
      if (handler) handler.call(self, event);
    };
    ws.onclose = function () {
      if (self.ws !== ws) return;
      self.ws = null;
      self.bound = false;
      self.loadingHistory = false;
      var delay = Math.min(RETRY_MAX, RETRY_MIN * Math.pow(2, self.attempt++));
      delay = delay / 2 + Math.random() * delay / 2;
      self.setState("offline", Math.round(delay / 1000));
      self.retryTimer = setTimeout(function () { self.connect(); }, delay);
    };
  };

  ChipChat.prototype.command = function (cmd) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(cmd));
    return true;
  };

  ChipChat.prototype.setState = function (state, seconds) {
    var labels = {
      connecting: "Connecting\u2026", reconnecting: "Reconnecting\u2026", online: "Online",
      offline: "Offline \u00b7 retrying in " + seconds + "s"
    };
    this.root.setAttribute("data-state", state);
    this.status.textContent = labels[state];
    var usable = state === "online";
    this.input.disabled = this.send.disabled = this.emailButton.disabled = !usable;
    this.quick.classList.toggle("chip-disabled", !usable);
  };

  // events from chip

  ChipChat.prototype.on_chat_started = function (event) {
    if (this.chatId && this.chatId !== event.chat_id) this.reset();  // the old chat is gone: start afresh
    this.bind(event.chat_id);
    this.historyDone = true;  // a new chat has no history
    this.older.textContent = "";
  };

  ChipChat.prototype.on_chat_resumed = function (event) {
    this.bind(event.chat_id);
    if (event.email && !this.emailInput.value) this.showEmail(event.email);
    // a reload starts with nothing shown: fetch the newest page. `before` is in the future so
    // that a clock behind chip's does not hide the latest messages (duplicates are skipped).
    if (!this.list.children.length) this.requestHistory(new Date(Date.now() + 86400000).toISOString());
  };

  ChipChat.prototype.bind = function (chatId) {
    this.chatId = chatId;
    localStorage.setItem(this.storageKey, chatId);
    this.bound = true;
    this.attempt = 0;
    this.setState("online");
  };

  ChipChat.prototype.on_chat_out = function (event) {
    var msg = event.msg_out;
    // ack even a repeat: chip pushes again when an earlier ack was lost
    this.command({ type: "ack_chat", msg_id: msg.id });
    if (this.seen["out:" + msg.id]) return;
    var stick = this.atBottom();
    this.list.appendChild(this.renderOut(msg));
    this.noteTime(msg.time);
    this.updateQuickReplies();
    if (stick) this.scrollToBottom();
  };

  ChipChat.prototype.on_history = function (event) {
    this.loadingHistory = false;
    var items = event.history, first = !this.list.children.length;
    var height = this.thread.scrollHeight, top = this.thread.scrollTop;
    var fragment = document.createDocumentFragment();
    for (var i = items.length - 1; i >= 0; i--) {    // newest first -> oldest at the top
      var item = items[i], node = null;
      if (item.msg_out && !this.seen["out:" + item.msg_out.id]) node = this.renderOut(item.msg_out);
      if (item.msg_in && !this.seen["in:" + item.msg_in.id]) node = this.renderIn(item.msg_in.text, item.msg_in.time, item.msg_in.id);
      if (node) fragment.appendChild(node);
      this.noteTime((item.msg_out || item.msg_in).time);
    }
    this.list.insertBefore(fragment, this.list.firstChild);
    this.historyDone = items.length < HISTORY_PAGE;
    this.older.textContent = this.historyDone && this.list.children.length ? "Start of conversation" : "";
    this.updateQuickReplies();
    if (first) this.scrollToBottom();
    else this.thread.scrollTop = top + (this.thread.scrollHeight - height);  // keep what the visitor was reading
    if (!this.historyDone && this.thread.scrollHeight <= this.thread.clientHeight) this.loadOlder();
  };

  ChipChat.prototype.on_error = function (event) {
    clearTimeout(this.emailTimer);
    if (this.emailButton.textContent === "Saving\u2026") this.emailButton.textContent = "Save";
    var text = FRIENDLY[event.code] || event.error;
    if (/^email:/.test(event.error || "")) text = "Please check your email address: " + event.error.replace(/^email:\s*/, "");
    this.showNotice(text);
  };

  // what the visitor does

  ChipChat.prototype.sendText = function (text) {
    text = (text || "").trim();
    if (!text || !this.bound) return;
    if (!this.command({ type: "send_msg", text: text })) return;
    this.list.appendChild(this.renderIn(text, null, null));
    this.input.value = "";
    this.quick.textContent = "";
    this.scrollToBottom();
  };

  ChipChat.prototype.saveEmail = function () {
    var self = this, email = this.emailInput.value.trim();
    if (!email || !this.command({ type: "set_email", email: email })) return;
    // chip does not answer a stored email; an `error` soon after means it was refused
    this.emailButton.textContent = "Saving\u2026";
    clearTimeout(this.emailTimer);
    this.emailTimer = setTimeout(function () { self.showEmail(email); }, 700);
  };

  ChipChat.prototype.showEmail = function (email) {
    this.emailInput.value = email;
    this.emailButton.textContent = "Saved \u2713";
    this.emailForm.classList.add("chip-email-saved");
  };

  ChipChat.prototype.loadOlder = function () {
    if (this.bound && !this.loadingHistory && !this.historyDone && this.oldest) this.requestHistory(this.oldest);
  };

  ChipChat.prototype.requestHistory = function (before) {
    this.loadingHistory = this.command({ type: "get_history", before: before });
    if (this.loadingHistory) this.older.textContent = "Loading earlier messages\u2026";
  };

  // rendering

  ChipChat.prototype.renderOut = function (msg) {
    this.seen["out:" + msg.id] = true;
    var staff = msg.user, o = this.options;
    var item = el("li", "chip-msg chip-msg-out" + (staff ? " chip-msg-staff" : ""));
    item.setAttribute("data-id", msg.id);
    if (msg.quick_replies) item.quickReplies = msg.quick_replies;
    var avatar;
    if (staff && staff.avatar) { avatar = el("img", "chip-avatar"); avatar.src = staff.avatar; avatar.alt = ""; }
    else if (staff) avatar = el("span", "chip-avatar chip-initials", initials(staff.name));
    else { avatar = el("img", "chip-avatar chip-avatar-bot"); avatar.src = o.logo; avatar.alt = ""; }
    var body = el("div", "chip-body");
    body.appendChild(el("div", "chip-sender", staff ? staff.name : o.title));
    if (msg.text) body.appendChild(el("div", "chip-bubble", msg.text));
    (msg.attachments || []).forEach(function (attachment) { body.appendChild(this.renderAttachment(attachment)); }, this);
    body.appendChild(el("time", "chip-time", clock(msg.time)));
    item.append(avatar, body);
    return item;
  };

  ChipChat.prototype.renderIn = function (text, time, id) {
    if (id) this.seen["in:" + id] = true;
    var item = el("li", "chip-msg chip-msg-in");
    var body = el("div", "chip-body");
    body.append(el("div", "chip-bubble", text), el("time", "chip-time", clock(time)));
    item.appendChild(body);
    return item;
  };

  ChipChat.prototype.renderAttachment = function (attachment) {
    // "mime/type:url": the URL has colons of its own, so split at the first one only
    var cut = attachment.indexOf(":"), type = attachment.slice(0, cut), url = attachment.slice(cut + 1);
    var link = el("a", "chip-attachment");
    link.href = url; link.target = "_blank"; link.rel = "noopener";
    if (type.indexOf("image/") === 0) {
      var img = el("img", "chip-image"); img.src = url; img.alt = "Image";
      link.classList.add("chip-attachment-image");
      link.appendChild(img);
    } else {
      link.classList.add("chip-attachment-file");
      link.append(el("span", "chip-file-icon", (type.split("/")[1] || "file").slice(0, 4).toUpperCase()),
                  el("span", "chip-file-name", decodeURIComponent(url.split("/").pop() || url)));
    }
    return link;
  };

  ChipChat.prototype.updateQuickReplies = function () {
    // only the newest message's quick replies are offered, as in any chat app
    var self = this, last = this.list.lastElementChild;
    this.quick.textContent = "";
    ((last && last.quickReplies) || []).forEach(function (text) {
      var button = el("button", "chip-quick-reply", text); button.type = "button";
      button.addEventListener("click", function () { self.sendText(text); });
      self.quick.appendChild(button);
    });
  };

  ChipChat.prototype.noteTime = function (time) {
    if (time && (!this.oldest || time < this.oldest)) this.oldest = time;
  };

  ChipChat.prototype.reset = function () {
    this.list.textContent = "";
    this.quick.textContent = "";
    this.seen = {};
    this.oldest = null;
  };

  ChipChat.prototype.showNotice = function (text) {
    var self = this;
    this.notice.textContent = text;
    this.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(function () { self.notice.hidden = true; }, 8000);
  };

  ChipChat.prototype.atBottom = function () {
    return this.thread.scrollHeight - this.thread.scrollTop - this.thread.clientHeight < 60;
  };

  ChipChat.prototype.scrollToBottom = function () {
    var thread = this.thread;
    thread.scrollTop = thread.scrollHeight;
    // images load later and grow the thread: follow them down
    Array.prototype.forEach.call(thread.querySelectorAll("img:not([data-followed])"), function (img) {
      img.setAttribute("data-followed", "");
      img.addEventListener("load", function () { thread.scrollTop = thread.scrollHeight; });
    });
  };

  window.ChipChat = {
    mount: function (element, options) { return new ChipChat(element, options); }
  };
})();
