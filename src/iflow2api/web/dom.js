// @ts-check
// Building the page's elements. Text from the API (model names, key names, labels, error messages) comes
// from clients and upstreams, so it only ever reaches the page as textContent, never as markup.

import { t } from "./i18n.js";

/** @typedef {Record<string, string | number | boolean | null | undefined>} Attributes */
/** @typedef {Node | string | number | boolean | null | undefined} Child */

/**
 * The element with this id, checked to be of the expected kind (HTMLElement unless told):
 *   $("newkey-dialog", HTMLDialogElement).showModal()
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {{ new (): T }} [kind]
 * @returns {T}
 */
export function $(id, kind) {
  const node = document.getElementById(id);
  const expected = kind || HTMLElement;
  if (!(node instanceof expected)) throw new Error(`The page has no ${expected.name} #${id}.`);
  return /** @type {T} */ (node);
}

/**
 * The nearest element around an event's target that matches `selector`, or null.
 *   closest(event, "button[data-action]")
 * @param {Event} event
 * @param {string} selector
 * @returns {HTMLElement | null}
 */
export function closest(event, selector) {
  const found = event.target instanceof Element ? event.target.closest(selector) : null;
  return found instanceof HTMLElement ? found : null;
}

/**
 * The first element under `root` that matches `selector`; the page's markup guarantees it is there.
 * @param {ParentNode} root
 * @param {string} selector
 * @returns {HTMLElement}
 */
export function find(root, selector) {
  const found = root.querySelector(selector);
  if (!(found instanceof HTMLElement)) throw new Error(`The page has nothing at ${selector}.`);
  return found;
}

/**
 * An element with attributes and children; strings become text nodes.
 *   el("td", { class: "num" }, "42")  ->  <td class="num">42</td>
 * @param {string} tag
 * @param {Attributes} [attributes]
 * @param {...Child} children
 * @returns {HTMLElement}
 */
export function el(tag, attributes = {}, ...children) {
  return fill(document.createElement(tag), attributes, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element; same rules as el().
 * @param {string} tag
 * @param {Attributes} [attributes]
 * @param {...Child} children
 * @returns {SVGElement}
 */
export function svg(tag, attributes = {}, ...children) {
  return fill(/** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag)), attributes, children);
}

/**
 * Attributes (null, undefined and false left out) and children (strings as text) of a new node.
 * @template {Element} N
 * @param {N} node
 * @param {Attributes} attributes
 * @param {Child[]} children
 * @returns {N}
 */
function fill(node, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/**
 * Show a message box, or hide it when the message is empty.
 * @param {HTMLElement} box
 * @param {string | Node} message words, or words with data (phrase.js)
 * @param {string} [kind] "error", or "" for news
 */
export function say(box, message, kind = "") {
  box.replaceChildren(message || "");
  box.className = "message" + (kind ? " " + kind : "");
  box.hidden = !message;
}

/**
 * A table row that spans every column, for "nothing here yet" and errors.
 * @param {HTMLElement} table
 * @param {string} text
 */
export function placeholderRow(table, text) {
  const columns = table.querySelectorAll("thead th").length || 1;
  return el("tr", { class: "placeholder" }, el("td", { colspan: columns, class: "muted" }, text));
}

/**
 * The body of a table the page's markup gives one.
 * @param {HTMLElement} table
 */
export function tableBody(table) {
  return find(table, "tbody");
}

/**
 * Name every cell after its column (data-label), so a phone can show rows as labelled cards.
 * @param {HTMLElement} table
 */
export function labelCells(table) {
  const names = [...table.querySelectorAll("thead th")].map((th) => (th.querySelector(".visually-hidden") ? "" : th.textContent));
  for (const row of table.querySelectorAll("tbody tr:not(.placeholder)")) {
    [...row.children].forEach((cell, i) => {
      const name = names[i];
      if (name && cell instanceof HTMLElement) cell.dataset.label = name;
    });
  }
}

/**
 * Ask before something that cannot be undone; resolves true when confirmed.
 * @param {string} text
 * @param {string} confirmLabel
 * @returns {Promise<boolean>}
 */
export function confirmAction(text, confirmLabel) {
  const dialog = $("confirm", HTMLDialogElement);
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

/**
 * Copy text and say so on the button for a moment.
 * @param {HTMLElement} button
 * @param {string} text
 */
export async function copyText(button, text) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = t("common.copied");
  } catch (_) {
    button.textContent = t("common.select_copy");
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}

/**
 * "a, b ,, c" -> ["a", "b", "c"]
 * @param {string} text
 * @returns {string[]}
 */
export function splitList(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean);
}

/**
 * A whole number from an <input type=number>, or null when empty.
 * @param {HTMLInputElement} input
 * @returns {number | null}
 */
export function optionalInt(input) {
  const text = input.value.trim();
  return text === "" ? null : Number.parseInt(text, 10);
}
