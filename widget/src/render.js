// A message's content: its text with http(s) links made clickable, and its attachments by type.
// Everything from chip is text: nothing is ever parsed as HTML, and only http(s) URLs become links,
// images or players.
import { el, icon, safeUrl } from "./dom.js";

const URLS = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?)\]}'"»”’]+$/;  // punctuation after a URL belongs to the sentence

export function richText(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of String(text).matchAll(URLS)) {
    const shown = match[0].replace(TRAILING, "");
    const href = safeUrl(shown);
    if (!href) continue;
    fragment.append(text.slice(last, match.index),
      el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow", text: shown }));
    last = match.index + shown.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

function fileName(url) {
  const path = new URL(url).pathname.split("/").pop();
  try {
    return decodeURIComponent(path) || url;
  } catch (e) {
    return path || url;
  }
}

function mapLink(value, t) {
  const parts = value.split(",");
  const [lat, lng] = parts.map(Number);
  if (parts.length !== 2 || !Number.isFinite(lat) || !Number.isFinite(lng) || Math.abs(lat) > 90 || Math.abs(lng) > 180) {
    return el("span", { class: "file", text: "geo:" + value });
  }
  const href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lng}#map=16/${lat}/${lng}`;
  return el("a", { class: "file geo", href, target: "_blank", rel: "noopener noreferrer" },
    icon("pin", 18), el("span", { text: t("location") }));
}

/** One attachment, "<mime type>:<url>" or "geo:<lat>,<lng>" as Courier writes them. */
export function attachment(value, t, sender, openImage) {
  const cut = value.indexOf(":");
  const type = value.slice(0, Math.max(cut, 0)).toLowerCase();
  const rest = value.slice(cut + 1);
  if (type === "geo") return mapLink(rest, t);
  const url = safeUrl(rest);
  if (!url) return el("span", { class: "file", text: rest });  // shown, never followed
  const name = fileName(url);
  if (type.startsWith("image/")) {
    const alt = t("image", { name: sender });
    const button = el("button", { type: "button", class: "image-button", "aria-label": `${t("openImage")}: ${alt}` },
      el("img", { src: url, alt: "", loading: "lazy" }));
    button.addEventListener("click", () => openImage(url, alt, button));
    return button;
  }
  if (type.startsWith("audio/")) return el("audio", { controls: true, preload: "none", src: url, "aria-label": name });
  if (type.startsWith("video/")) {
    return el("video", { controls: true, preload: "metadata", playsinline: true, src: url, "aria-label": name });
  }
  return el("a", { class: "file", href: url, target: "_blank", rel: "noopener noreferrer", download: name,
    "aria-label": t("download", { name }) }, icon("file", 18), el("span", { text: name }));
}
