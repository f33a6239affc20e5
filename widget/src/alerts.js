// Telling the visitor something arrived: an ARIA live region for screen readers, and while the
// panel is closed (or the tab hidden), an unread badge on the launcher, a counter in the page's
// title and, if the site asked for it, a short sound.
import { el } from "./dom.js";

export class Alerts {
  constructor(v, t, sound) {
    this.v = v;
    this.t = t;
    this.sound = sound;
    this.unread = 0;
    this.baseTitle = null;  // the page's own title while ours has a counter in it
    this.context = null;
  }

  announce(text) {
    const live = this.v.live;
    live.append(el("p", { text }));
    while (live.children.length > 3) live.firstChild.remove();
  }

  arrived() {
    this.unread++;
    this.show();
    this.beep();
  }

  read() {
    this.unread = 0;
    this.show();
  }

  show() {
    const v = this.v, n = this.unread;
    v.badge.hidden = !n;
    v.badge.textContent = n > 99 ? "99+" : String(n);
    v.launcher.setAttribute("aria-label", n ? this.t("openUnread", { n }) : this.t("open"));
    if (n) {
      if (this.baseTitle === null) this.baseTitle = document.title;
      document.title = `(${n}) ${this.baseTitle}`;
    } else if (this.baseTitle !== null) {
      document.title = this.baseTitle;
      this.baseTitle = null;
    }
  }

  /** Browsers let a page make sound only once the visitor interacted with it: made on first touch. */
  audio() {
    if (this.sound && !this.context && window.AudioContext) this.context = new AudioContext();
    return this.context;
  }

  beep() {
    const ctx = this.audio();
    if (!ctx) return;
    const osc = ctx.createOscillator(), gain = ctx.createGain(), now = ctx.currentTime;
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, now);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now);
    osc.stop(now + 0.25);
  }
}
