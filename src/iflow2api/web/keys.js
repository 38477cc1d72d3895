// @ts-check
// The client keys section: who may use the gateway, with which limits; a new key is shown once.

import { api, tableLoader } from "./api.js";
import {
  $, closest, confirmAction, copyText, el, find, labelCells, optionalInt, placeholderRow, splitList, tableBody,
} from "./dom.js";
import { count, dateOf } from "./format.js";
import { onLanguageChange, t } from "./i18n.js";
import { messageBox, phrase } from "./phrase.js";

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

const box = messageBox("keys-message", () => t("keys.error"));
const message = box.show;
const fail = box.fail;

/** @param {Key} key */
function limitsText(key) {
  const limits = [];
  if (key.rpm !== null && key.rpm !== undefined) limits.push(t("keys.limit.rpm", { count: count(key.rpm) }));
  if (key.tokens_per_day !== null && key.tokens_per_day !== undefined) {
    limits.push(t("keys.limit.tokens-per-day", { count: count(key.tokens_per_day) }));
  }
  return limits.length ? limits.join(" · ") : t("keys.limit.none");
}

/** @param {Key} key */
function keyRow(key) {
  const tokens = key.tokens_per_day ? count(key.tokens_today) + " / " + count(key.tokens_per_day) : count(key.tokens_today);
  return el("tr", { "data-id": key.id },
    el("td", { class: "strong", translate: "no", id: "key-name-" + key.id }, key.name),
    el("td", {}, el("code", {}, key.prefix)),
    el("td", {}, key.admin
      ? el("span", { class: "state state-admin" }, t("keys.role.admin"))
      : el("span", { class: "muted" }, t("keys.role.client"))),
    el("td", {}, limitsText(key)),
    key.models.length
      ? el("td", { translate: "no" }, key.models.join(", "))
      : el("td", { class: "muted" }, t("keys.models.all")),
    el("td", { class: "num" }, count(key.requests_today)),
    el("td", { class: "num" }, tokens),
    el("td", {}, key.created_at ? dateOf(key.created_at) : ""),
    el("td", { class: "row-actions" }, el("button", {
      // Named by its own words and the key's name ("Revoke laptop"), without words around data.
      type: "button", class: "small danger", "data-action": "revoke", "data-id": key.id,
      id: "key-revoke-" + key.id, "aria-labelledby": `key-revoke-${key.id} key-name-${key.id}`,
    }, t("keys.revoke"))));
}

/**
 * The keys last shown: a switch of language shows them again in the new words.
 * @type {{ keys: Key[] } | null}
 */
let last = null;

/** @param {{ keys: Key[] }} data */
function render(data) {
  last = data;
  const table = $("keys-table");
  const body = tableBody(table);
  body.replaceChildren(...data.keys.map(keyRow));
  if (!data.keys.length) body.append(placeholderRow(table, t("keys.empty")));
  labelCells(table);
  $("keys-hint").hidden = data.keys.length > 0;
}

/** Fetch the keys and show them if they changed. */
export const load = tableLoader("/api/keys", render, box.text, fail);

/**
 * The new key, in a modal that only its own button closes; the key leaves the page with it.
 * @param {string} name
 * @param {string} key
 */
function showOnce(name, key) {
  // The heading names the key where the language puts it ("New key for x", "x 的新密钥").
  const named = el("span", { id: "newkey-for", translate: "no" }, name);
  $("newkey-title").replaceChildren(...phrase(t("newkey.title"), { name: named }));
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
    const sure = await confirmAction(t("keys.first.confirm"), t("keys.first.create"));
    if (!sure) return;
  }
  try {
    const created = await api("/api/keys", body);
    $("newkey-form", HTMLFormElement).reset();
    message(() => [], "");
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
  const sure = await confirmAction(t("keys.revoke.confirm", { name }), t("keys.revoke"));
  if (!sure) return;
  try {
    await api("/api/keys/revoke", { id });
    message(() => phrase(t("keys.revoked"), { name }), "");
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
  onLanguageChange(() => {
    if (last) render(last);
    box.again();
  });
}
