// @ts-check
// The client keys section: who may use the gateway, with which limits; a new key is shown once.

import { api, asError, handledElsewhere, tableLoader } from "./api.js";
import {
  $, closest, confirmAction, copyText, el, find, labelCells, optionalInt, placeholderRow, say, splitList, tableBody,
} from "./dom.js";
import { count, dateOf } from "./format.js";

/**
 * One client key as /api/keys lists it (routes/manage.py); never the key itself.
 * @typedef {object} Key
 * @property {string} id
 * @property {string} name
 * @property {string} prefix
 * @property {boolean} admin
 * @property {number | null} [rpm]
 * @property {number | null} [tokens_per_day]
 * @property {string[]} models
 * @property {number} requests_today
 * @property {number} tokens_today
 * @property {number | null} [created_at]
 */

/**
 * What the section asks of the page.
 * @typedef {object} Hooks
 * @property {() => boolean} adminRequired whether the gateway had keys (and so a sign-in) at the last status
 * @property {() => Promise<unknown>} statusChanged ask for the status again
 */

/** @type {Hooks} */
let hooks = { adminRequired: () => true, statusChanged: async () => {} };

/**
 * @param {string} text
 * @param {string} kind
 */
function message(text, kind) {
  say($("keys-message"), text, kind);
}

/** @param {unknown} error */
function fail(error) {
  if (!handledElsewhere(error)) message(asError(error).message, "error");
}

/** @param {Key} key */
function limitsText(key) {
  const limits = [];
  if (key.rpm !== null && key.rpm !== undefined) limits.push(count(key.rpm) + " requests/min");
  if (key.tokens_per_day !== null && key.tokens_per_day !== undefined) limits.push(count(key.tokens_per_day) + " tokens/day");
  return limits.length ? limits.join(" · ") : "none";
}

/** @param {Key} key */
function keyRow(key) {
  const tokens = key.tokens_per_day ? count(key.tokens_today) + " / " + count(key.tokens_per_day) : count(key.tokens_today);
  return el("tr", { "data-id": key.id },
    el("td", { class: "strong" }, key.name),
    el("td", {}, el("code", {}, key.prefix)),
    el("td", {}, key.admin ? el("span", { class: "state state-admin" }, "admin") : el("span", { class: "muted" }, "client")),
    el("td", {}, limitsText(key)),
    el("td", key.models.length ? {} : { class: "muted" }, key.models.length ? key.models.join(", ") : "all"),
    el("td", { class: "num" }, count(key.requests_today)),
    el("td", { class: "num" }, tokens),
    el("td", {}, key.created_at ? dateOf(key.created_at) : ""),
    el("td", { class: "row-actions" }, el("button", {
      type: "button", class: "small danger", "data-action": "revoke", "data-id": key.id, "aria-label": "Revoke " + key.name,
    }, "Revoke")));
}

/** @param {{ keys: Key[] }} data */
function render(data) {
  const table = $("keys-table");
  const body = tableBody(table);
  body.replaceChildren(...data.keys.map(keyRow));
  if (!data.keys.length) body.append(placeholderRow(table, "No client keys yet."));
  labelCells(table);
  $("keys-hint").hidden = data.keys.length > 0;
}

/** Fetch the keys and show them if they changed. */
export const load = tableLoader("/api/keys", render, message, fail);

/**
 * The new key, in a modal that only its own button closes; the key leaves the page with it.
 * @param {string} name
 * @param {string} key
 */
function showOnce(name, key) {
  $("newkey-for").textContent = name;
  $("newkey-value").textContent = key;
  $("newkey-dialog", HTMLDialogElement).showModal();
}

/** @param {SubmitEvent} event */
async function createKey(event) {
  event.preventDefault();
  const body = {
    name: $("newkey-name", HTMLInputElement).value.trim(),
    admin: $("newkey-admin", HTMLInputElement).checked,
    rpm: optionalInt($("newkey-rpm", HTMLInputElement)),
    tokens_per_day: optionalInt($("newkey-tpd", HTMLInputElement)),
    models: splitList($("newkey-models", HTMLInputElement).value),
  };
  // The first key switches on sign-in for this page: it must not lock out whoever creates it.
  const firstKey = !hooks.adminRequired();
  if (firstKey && !body.admin) {
    const sure = await confirmAction(
      "This is the gateway's first key, and not an admin key. Once it exists, clients must send a key " +
      "and this page asks for an admin key or the admin password. Create it anyway?", "Create");
    if (!sure) return;
  }
  try {
    const created = await api("/api/keys", body);
    $("newkey-form", HTMLFormElement).reset();
    message("", "");
    showOnce((created.record && created.record.name) || body.name, created.key);
    if (firstKey && created.record && created.record.admin) {
      // Sign this page in with the new admin key, so it keeps working once keys are required.
      await api("/api/session", { key: created.key }).catch(() => {});
    }
    if (firstKey) await hooks.statusChanged();
    await load();
  } catch (error) { fail(error); }
}

/**
 * @param {string} id
 * @param {string} name
 */
async function revoke(id, name) {
  const sure = await confirmAction(
    `Revoke the key “${name}”? Clients using it are refused from now on. This cannot be undone.`, "Revoke");
  if (!sure) return;
  try {
    await api("/api/keys/revoke", { id });
    message(`Revoked ${name}.`, "");
    await load();
  } catch (error) { fail(error); }
}

/** @param {Hooks} pageHooks */
export function wire(pageHooks) {
  hooks = pageHooks;
  $("newkey-form").addEventListener("submit", createKey);
  $("keys-table").addEventListener("click", (event) => {
    const button = closest(event, "button[data-action=revoke]");
    const row = button && button.closest("tr");
    if (button && row) revoke(button.dataset.id || "", find(row, ".strong").textContent || "");
  });
  const dialog = $("newkey-dialog", HTMLDialogElement);
  $("newkey-copy").addEventListener("click", () => copyText($("newkey-copy"), $("newkey-value").textContent || ""));
  // The key leaves the page as the dialog closes, not a task later (when "close" fires).
  const forgetKey = () => {
    $("newkey-value").textContent = "";
    $("newkey-for").textContent = "";
  };
  $("newkey-close").addEventListener("click", () => {
    forgetKey();
    dialog.close();
  });
  // Escape must not lose the key by accident: only the button closes it.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  dialog.addEventListener("close", forgetKey);
}
