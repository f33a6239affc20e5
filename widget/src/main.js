// The widget's bundle, added to the page by the loader (/wc/widget.js) with the data- attributes
// of the site's script tag. It defines one global, `chip`, and everything else lives in a shadow root.
import { pickLanguage } from "./i18n.js";
import { Widget } from "./widget.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function flag(value, fallback) {
  if (value === undefined) return fallback;
  return !/^(false|off|no|0)$/i.test(value.trim());  // a bare data-open="" is on
}

/** The options from the script tag's data- attributes; the socket URL from the script's own URL. */
export function readOptions(script) {
  const d = script.dataset;
  const channel = String(d.channel || "").trim().toLowerCase();
  if (!UUID.test(channel)) return null;
  const socket = new URL(`../connect/${channel}/`, script.src);  // the bundle is /wc/widget/<hash>.js
  socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
  return {
    channel,
    socketUrl: socket.href,
    title: d.title || "Chat",
    logo: d.logo ? new URL(d.logo, document.baseURI).href : "",
    color: d.color || "#1e5b4b",
    position: d.position === "left" ? "left" : "right",
    lang: pickLanguage(d.lang, navigator.languages),
    welcome: d.welcome || "",
    open: flag(d.open, false),
    sound: flag(d.sound, false),
    theme: ["light", "dark"].includes(d.theme) ? d.theme : "auto",
  };
}

(function start(script) {
  const previous = window.chip;
  if (!script || (previous && previous.loaded)) return;
  const options = readOptions(script);
  if (!options) {
    console.warn("chip: the widget's script tag needs data-channel=\"<channel uuid>\"");
    return;
  }
  const widget = new Widget(options);
  const api = (command, ...args) => widget.call(command, args);
  api.loaded = true;
  window.chip = api;
  const mount = () => {
    widget.mount();
    for (const args of (previous && previous.q) || []) api(...args);  // calls made before the bundle arrived
  };
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount, { once: true });
})(document.currentScript);
