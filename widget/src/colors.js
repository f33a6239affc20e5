// The accent color a site chooses must still give readable text (WCAG 2.1 AA, 4.5:1): the text on
// it is white or near-black, and where the accent itself is text, it is darkened (or lightened on
// the dark theme) until it reads.

function rgb(hex) {
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(hex || "").trim());
  if (!m) return null;
  const h = m[1].length === 3 ? m[1].replace(/./g, "$&$&") : m[1];
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
}

function luminance([r, g, b]) {
  const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

export function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

const hex = (c) => "#" + c.map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
const mix = (c, to, t) => c.map((v, i) => v + (to[i] - v) * t);

/** CSS variables for an accent: itself, the text on it, and itself as text on `surface`; null if not a color. */
export function accentColors(accent, surface) {
  const color = rgb(accent);
  if (!color) return null;
  const white = [255, 255, 255], ink = [17, 17, 17];
  const on = contrast(color, white) >= contrast(color, ink) ? white : ink;
  let fill = color;
  for (let t = 0.1; contrast(fill, on) < 4.5 && t <= 1; t += 0.1) fill = mix(color, on === white ? [0, 0, 0] : white, t);
  const bg = rgb(surface);
  const toward = luminance(bg) > 0.5 ? [0, 0, 0] : white;
  let text = color;
  for (let t = 0.1; contrast(text, bg) < 4.5 && t <= 1; t += 0.1) text = mix(color, toward, t);
  return { "--accent": hex(fill), "--on-accent": hex(on), "--accent-ink": hex(text) };
}
