// Messages as the visitor sees them: who wrote them (agent name and avatar, or the bot's name and
// logo), their content, when (in the visitor's locale), and for the visitor's own, their state.
import { el, initials, safeUrl } from "./dom.js";
import { attachment, richText } from "./render.js";

function avatar(name, picture) {
  return picture ? el("img", { class: "avatar", src: picture, alt: "" })
    : el("span", { class: "avatar initials", "aria-hidden": "true", text: initials(name) });
}

export class Messages {
  /** o: the options; t: the translator; openImage(url, alt, from): the lightbox */
  constructor(o, t, locale, openImage) {
    this.o = o;
    this.t = t;
    this.locale = locale;
    this.openImage = openImage;
  }

  /** A msg_out from chip; its quick replies ride along on the element. */
  out(msg) {
    const staff = msg.user && typeof msg.user === "object" ? msg.user : null;
    const name = staff ? String(staff.name || "") : this.o.title;
    const picture = staff ? safeUrl(staff.avatar) : this.o.logo;
    const body = el("div", { class: "body" }, el("div", { class: "sender", text: name }));
    if (msg.text) body.append(this.bubble(msg.text));
    for (const value of Array.isArray(msg.attachments) ? msg.attachments : []) {
      body.append(attachment(String(value), this.t, name, this.openImage));
    }
    body.append(el("div", { class: "meta" }, this.time(msg.time)));
    const item = el("li", { class: "msg out" + (staff ? " staff" : ""), "data-id": String(msg.id) },
      avatar(name, picture), body);
    item.quickReplies = Array.isArray(msg.quick_replies) ? msg.quick_replies.map(String) : [];
    return item;
  }

  /** The site's data-welcome, shown above the conversation as the bot's (it is no message of the chat). */
  welcome() {
    return el("div", { class: "msg out welcome" }, avatar(this.o.title, this.o.logo),
      el("div", { class: "body" }, el("div", { class: "sender", text: this.o.title }), this.bubble(this.o.welcome)));
  }

  /** The visitor's own message: from the history (with its time) or just typed. */
  in(text, time) {
    return el("li", { class: "msg in" }, el("div", { class: "body" },
      el("span", { class: "sr-only", text: this.t("you") + ":" }), this.bubble(text),
      el("div", { class: "meta" }, this.time(time))));
  }

  bubble(text) {
    return el("div", { class: "bubble", dir: "auto" }, richText(String(text)));
  }

  /** sending / sent / failed on a message the visitor typed; failed offers `retry`. */
  status(item, status, retry) {
    const meta = item.querySelector(".meta");
    item.setAttribute("data-status", status);
    item.classList.toggle("failed", status === "failed");
    meta.querySelectorAll(".state, .retry").forEach((node) => node.remove());
    meta.append(el("span", { class: "state", text: this.t(status) }));
    if (status === "failed") meta.append(el("button", { type: "button", class: "retry", text: this.t("retry"), onclick: retry }));
  }

  time(iso) {
    const when = iso ? new Date(iso) : new Date();
    const today = when.toDateString() === new Date().toDateString();
    const shown = when.toLocaleString(this.locale, today ? { hour: "numeric", minute: "2-digit" }
      : { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
    return el("time", { datetime: when.toISOString(), title: when.toLocaleString(this.locale), text: shown });
  }
}
