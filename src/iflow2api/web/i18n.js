// @ts-check
// The page's two languages, English and Simplified Chinese. Every string a person reads on the page
// comes from a catalog, /static/messages.en.json or /static/messages.zh-CN.json, keyed by a dotted name
// ("accounts.add.title"); the page follows the browser's language until the person picks one with the
// header's switch, which is remembered in localStorage.
//
//   In the HTML:  <h2 data-i18n="usage.empty.title">No requests yet</h2>
//                 <p data-i18n-html="connect.terminal">…<code>…</code></p>  (markup from the catalog only)
//                 <input data-i18n-attr="placeholder:keys.form.name.example">
//                 Text that is data, not words (ids, model names, code) carries translate="no".
//   In a module:  t("accounts.removed", { label })   "Removed {label}." -> "Removed team."
//                 tn("serving.accounts", 2)           picks "….one" or "….other" by the language's plural rule
//
// English is the fallback of every key, so a key missing from a catalog shows English, never the key;
// tests/unit/test_page_messages.py keeps both catalogs complete and every key used on the page defined.

/** @typedef {"en" | "zh-CN"} Language */
/** @typedef {Record<string, string | number>} Values */

/** Each language the switch offers, in its own words. */
export const LANGUAGES = /** @type {const} */ ({ en: "English", "zh-CN": "简体中文" });
const STORED = "iflow2api.language";

/** @type {Record<string, string>} */
let english = {};
/** @type {Record<string, string>} */
let catalog = {};
/** @type {Language} */
let current = "en";
/** @type {Array<() => void>} */
const listeners = [];

/**
 * The language of a browser language tag: any Chinese is zh-CN (the only Chinese the page has), else null.
 * @param {string} tag
 * @returns {Language | null}
 */
function languageOf(tag) {
  const lower = tag.toLowerCase();
  if (lower.startsWith("zh")) return "zh-CN";
  if (lower.startsWith("en")) return "en";
  return null;
}

/** The remembered choice, else the first of the browser's languages the page has, else English. */
function chosen() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORED);
  } catch (_) {
    // Storage refused (a private window's policy): follow the browser.
  }
  if (stored === "en" || stored === "zh-CN") return stored;
  for (const tag of navigator.languages || [navigator.language]) {
    const language = languageOf(tag || "");
    if (language) return language;
  }
  return "en";
}

/**
 * One catalog, as served.
 * @param {Language} language
 * @returns {Promise<Record<string, string>>}
 */
async function fetchCatalog(language) {
  const response = await fetch("/static/messages." + language + ".json");
  if (!response.ok) throw new Error("The page's " + language + " messages did not load: " + response.status);
  return response.json();
}

/** Load English and the chosen language, then translate the page's markup; call once, before anything renders. */
export async function start() {
  english = await fetchCatalog("en");
  await use(chosen());
}

/**
 * Switch to `language`: its catalog, the markup, and whatever listens (the sections re-render).
 * @param {Language} language
 */
async function use(language) {
  catalog = language === "en" ? english : await fetchCatalog(language);
  current = language;
  document.documentElement.lang = language;
  translate(document);
}

/**
 * Pick a language and remember it.
 * @param {Language} language
 */
export async function choose(language) {
  try {
    localStorage.setItem(STORED, language);
  } catch (_) {
    // Not remembered, but still switched for this visit.
  }
  await use(language);
  for (const listener of listeners) listener();
}

/**
 * Call `listener` after every switch of language (to re-render what a module built from strings).
 * @param {() => void} listener
 */
export function onLanguageChange(listener) {
  listeners.push(listener);
}

/** The language the page shows now. */
export function language() {
  return current;
}

/**
 * The words for `key` in the current language, `{name}` placeholders filled from `values`.
 * @param {string} key
 * @param {Values} [values]
 */
export function t(key, values) {
  const text = catalog[key] ?? english[key];
  if (text === undefined) {
    console.warn("The page has no words for " + key);
    return key;
  }
  return values ? fill(text, values) : text;
}

/**
 * The words for `count` of something: `key.one` or `key.other`, as the language's plural rule picks
 * (Chinese has one form, so its catalog holds only `.other`). `{count}` is filled in, formatted.
 * @param {string} key
 * @param {number} count
 * @param {Values} [values]
 */
export function tn(key, count, values = {}) {
  const form = new Intl.PluralRules(current).select(count);
  const chosenKey = key + "." + form;
  const name = chosenKey in catalog || chosenKey in english ? chosenKey : key + ".other";
  return t(name, { count: new Intl.NumberFormat(current).format(count), ...values });
}

/**
 * @param {string} text
 * @param {Values} values
 */
function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/**
 * Put the current language's words into the markup under `root`: data-i18n (text), data-i18n-html
 * (markup, from the catalog only: never data) and data-i18n-attr ("placeholder:key;title:key").
 * @param {ParentNode} root
 */
export function translate(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    if (node instanceof HTMLElement) node.textContent = t(node.dataset.i18n || "");
  }
  for (const node of root.querySelectorAll("[data-i18n-html]")) {
    if (node instanceof HTMLElement) node.innerHTML = t(node.dataset.i18nHtml || "");
  }
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    if (!(node instanceof HTMLElement)) continue;
    for (const pair of (node.dataset.i18nAttr || "").split(";")) {
      const [attribute, key] = pair.split(":").map((part) => part.trim());
      if (attribute && key) node.setAttribute(attribute, t(key));
    }
  }
}
