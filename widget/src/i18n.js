// One file per language in ../i18n; a string missing from one falls back to English.
import ar from "../i18n/ar.json";
import en from "../i18n/en.json";
import es from "../i18n/es.json";
import fr from "../i18n/fr.json";
import pt from "../i18n/pt.json";

const LANGUAGES = { ar, en, es, fr, pt };
const RTL = ["ar"];

/** The language to speak: data-lang if we have it, else the first of the browser's we have. */
export function pickLanguage(wanted, browser) {
  for (const tag of [wanted, ...(browser || [])]) {
    const base = String(tag || "").toLowerCase().split(/[-_]/)[0];
    if (LANGUAGES[base]) return base;
  }
  return "en";
}

export function translator(lang) {
  const strings = LANGUAGES[lang] || en;
  return (key, values) => String(strings[key] || en[key] || key)
    .replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? values[name] : ""));
}

export const isRtl = (lang) => RTL.includes(lang);

/** The visitor's own locale when it is of the widget's language (pt-BR rather than pt), for dates. */
export function locale(lang, browser) {
  return (browser || []).find((tag) => tag.toLowerCase().split(/[-_]/)[0] === lang) || lang;
}
