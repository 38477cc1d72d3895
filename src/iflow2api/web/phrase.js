// @ts-check
// Sentences that hold data: a catalog's words with a label, a model or a host's own error put in
// where its {placeholder} stands, each datum in an element marked translate="no" (it is not words of
// the page's language, and a translating browser or the Chinese page's checks must leave it be).
//
//   phrase(t("accounts.added"), { label: "team" })   "Added {label}." -> ["Added ", <span translate=no>team</span>, "."]

import { asError, handledElsewhere } from "./api.js";
import { $, el } from "./dom.js";

/** @typedef {Record<string, string | number | Node>} Parts */

/**
 * A datum as the page shows it inside words: its own element, never translated.
 * @param {string | number} value
 */
export function datum(value) {
  return el("span", { translate: "no" }, value);
}

/**
 * `template`'s text with its placeholders filled: a string value is data (wrapped by datum()), a
 * number is formatted by the caller already or shown as is, a Node (words built with t() or
 * another phrase) goes in as it is.
 * @param {string} template
 * @param {Parts} parts
 * @returns {Array<string | Node>}
 */
export function phrase(template, parts) {
  /** @type {Array<string | Node>} */
  const out = [];
  let last = 0;
  for (const match of template.matchAll(/\{(\w+)\}/g)) {
    const value = parts[match[1]];
    if (value === undefined) continue;
    out.push(template.slice(last, match.index));
    out.push(value instanceof Node ? value : typeof value === "number" ? String(value) : datum(value));
    last = (match.index || 0) + match[0].length;
  }
  out.push(template.slice(last));
  return out.filter((part) => part !== "");
}

/**
 * Words, not data, as a Node to put into a phrase: `words(tn("check.listed", 2))`.
 * @param {Array<string | Node> | string} parts
 */
export function words(parts) {
  const span = el("span", {});
  span.append(...(typeof parts === "string" ? [parts] : parts));
  return span;
}

/**
 * A section's message box, whose message is built again in the new words when the language switches
 * (call again()). The management API's errors are its own English words: data after the section's lead.
 *   const box = messageBox("keys-message", () => t("keys.error"));
 *   box.show(() => phrase(t("keys.revoked"), { name }));   box.fail(error);   onLanguageChange(box.again);
 * @param {string} id
 * @param {() => string} errorWords the lead of an error, a template with {error}
 */
export function messageBox(id, errorWords) {
  /** @type {{ build: () => Array<string | Node>, kind: string }} */
  let shown = { build: () => [], kind: "" };
  const again = () => {
    const parts = shown.build();
    const box = $(id);
    box.replaceChildren(...parts);
    box.className = "message" + (shown.kind ? " " + shown.kind : "");
    box.hidden = !parts.length;
  };
  /**
   * @param {() => Array<string | Node>} build the message's parts, or none to hide the box
   * @param {string} [kind] "error", or "" for news
   */
  const show = (build, kind = "") => {
    shown = { build, kind };
    again();
  };
  /**
   * A table loader's message: a failed load's text, or "" to clear it.
   * @param {string} text
   * @param {string} kind
   */
  const text = (text, kind) => show(() => (text ? phrase(errorWords(), { error: text }) : []), kind);
  /** @param {unknown} error */
  const fail = (error) => {
    if (!handledElsewhere(error)) text(asError(error).message, "error");
  };
  return { show, text, fail, again };
}
