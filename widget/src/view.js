// The widget's elements, built once inside its shadow root. Every control has a label.
import { el, icon } from "./dom.js";

export function build(o, t) {
  const v = {};
  v.logo = o.logo ? el("img", { class: "logo", src: o.logo, alt: "" }) : null;
  v.status = el("div", { class: "status" });
  v.closeButton = el("button", { type: "button", class: "icon-button", "aria-label": t("close") }, icon("close", 18));
  const titleId = "chip-title";
  v.offline = el("p", { class: "offline", hidden: true, text: t("offlineNote") });

  v.emailInput = el("input", { id: "chip-email", type: "email", dir: "ltr", name: "email", autocomplete: "email",
    placeholder: t("emailPlaceholder"), "aria-describedby": "chip-email-error" });
  v.emailButton = el("button", { type: "submit", class: "small-button", text: t("emailSave") });
  v.emailError = el("div", { id: "chip-email-error", class: "email-error", hidden: true });
  v.email = el("form", { class: "email", novalidate: true },
    el("label", { for: "chip-email", text: t("emailLabel") }), v.emailInput, v.emailButton, v.emailError);

  v.older = el("div", { class: "older" });
  v.list = el("ol", { class: "messages" });
  v.thread = el("div", { class: "thread", role: "region", tabindex: "0", "aria-label": t("conversation") },
    v.older, v.list);
  v.notice = el("p", { class: "notice", role: "alert", hidden: true });
  v.quick = el("div", { class: "quick", role: "group", "aria-label": t("quickReplies"), hidden: true });

  v.input = el("textarea", { id: "chip-input", rows: "1", placeholder: t("placeholder"), maxlength: "4096" });
  v.send = el("button", { type: "submit", class: "send", "aria-label": t("send") }, icon("send"));
  v.composer = el("form", { class: "composer" },
    el("label", { for: "chip-input", class: "sr-only", text: t("message") }), v.input, v.send);

  v.panel = el("section", { class: "panel", role: "dialog", "aria-labelledby": titleId, hidden: true },
    el("header", { class: "header" }, v.logo,
      el("div", { class: "heading" }, el("h2", { class: "title", id: titleId, text: o.title }), v.status),
      v.closeButton),
    v.offline, v.email, v.thread, v.notice, v.quick, v.composer);

  v.badge = el("span", { class: "badge", hidden: true, "aria-hidden": "true" });
  v.launcher = el("button", { type: "button", class: "launcher", "aria-expanded": "false", "aria-label": t("open") },
    icon("chat", 28), v.badge);
  v.live = el("div", { class: "sr-only", "aria-live": "polite", "aria-atomic": "false" });

  v.lightboxImage = el("img", { alt: "" });
  v.lightboxLink = el("a", { target: "_blank", rel: "noopener noreferrer", text: t("openOriginal") });
  v.lightboxClose = el("button", { type: "button", class: "icon-button", "aria-label": t("closeImage") }, icon("close"));
  v.lightbox = el("div", { class: "lightbox", role: "dialog", "aria-modal": "true", "aria-label": t("openImage"),
    hidden: true }, v.lightboxClose, v.lightboxImage, v.lightboxLink);

  v.root = el("div", { class: "chip" + (o.position === "left" ? " left" : ""), "data-state": "connecting" },
    v.panel, v.launcher, v.live, v.lightbox);
  return v;
}

/** The elements of `container` that Tab can reach, in order. */
export function focusable(container) {
  return [...container.querySelectorAll("button, a[href], input, textarea, audio, video, [tabindex]")]
    .filter((node) => !node.disabled && node.tabIndex >= 0 && node.getClientRects().length);
}

/** The image viewer over the panel; closing it puts the focus back on the image it was opened from. */
export class Lightbox {
  constructor(v) {
    this.v = v;
    this.from = null;
    v.lightboxClose.addEventListener("click", () => this.close(true));
  }

  get isOpen() { return !this.v.lightbox.hidden; }

  open(url, alt, from) {
    const v = this.v;
    this.from = from;
    v.lightboxImage.src = url;
    v.lightboxImage.alt = alt;
    v.lightboxLink.href = url;
    v.lightbox.hidden = false;
    v.lightboxClose.focus();
  }

  close(refocus) {
    const v = this.v;
    if (!this.isOpen) return;
    v.lightbox.hidden = true;
    v.lightboxImage.removeAttribute("src");
    if (refocus && this.from) this.from.focus();
  }
}
