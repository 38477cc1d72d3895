// @ts-check
// The accounts section: the pool's upstream accounts, their state, and adding or managing them.

import { api, asError, handledElsewhere, tableLoader } from "./api.js";
import {
  $, closest, confirmAction, el, find, labelCells, optionalInt, placeholderRow, say, splitList, tableBody,
} from "./dom.js";
import { clock, count, percent } from "./format.js";
import { startBrowserLogin } from "./overview.js";

/**
 * One account as /api/accounts lists it (routes/manage.py).
 * @typedef {object} Account
 * @property {string} id
 * @property {string} label
 * @property {string} kind "iflow-oauth", "iflow-key" or "openai-compatible"
 * @property {string} source "iflow-cli", "config" or "store"
 * @property {string | null} base_url
 * @property {string} [provider] the provider profile it is spoken to with ("deepseek", "generic", "iflow"...)
 * @property {boolean} [provider_by_host] true when its base URL's host chose the profile, not the account
 * @property {string} secret the key, masked
 * @property {string[]} [models]
 * @property {boolean} enabled
 * @property {string} state "ok", "cooling", "quarantined", "out-of-credit", "failing", "needs-login"...
 * @property {number | null} [until] when a cooldown ends (epoch seconds)
 * @property {string | null} [reason]
 * @property {number} in_flight
 * @property {number | null} [limit]
 * @property {number} waiting
 * @property {number} requests
 * @property {number} errors
 */

/**
 * A provider profile an account may name, as /api/accounts lists them.
 * @typedef {{ name: string, title: string, base_url: string }} Provider
 */

/** @typedef {{ strategy: string, affinity: boolean, accounts: Account[], providers?: Provider[] }} AccountList */

/**
 * What a check of an account found (services/account_check.py): it works, or the problem in words.
 * @typedef {{ ok: boolean, words: string, problem: string | null, latency_ms: number | null, models: number | null, model: string | null }} CheckResult
 */

/** The form's first choice: it sends no provider, so the base URL's host picks the profile. */
const BY_HOST = "";
/** The profile of any OpenAI-compatible server, listed right after BY_HOST: naming it pins
 * pass-through even on a known host (a proxy at api.deepseek.com, or a profile that misbehaves). */
const GENERIC = "generic";
/** @type {Provider[]} */
let providers = [];

/** @type {Record<string, string>} */
const KINDS = { "iflow-oauth": "iFlow login", "iflow-key": "iFlow API key", "openai-compatible": "OpenAI-compatible" };
/** @type {Record<string, [name: string, help: string]>} */
const SOURCES = {
  "iflow-cli": ["~/.iflow", "The iFlow CLI's own login; log out on the overview to drop it."],
  config: ["config file", "Set in the gateway's configuration; change it there."],
  store: ["added here", "Added on this page or with the CLI."],
};
/** @type {Record<string, string>} */
const STRATEGIES = {
  "round-robin": "round-robin (requests take turns across the accounts)",
  "fill-first": "fill-first (the first account until it is busy or cooling, then the next)",
};

/**
 * @param {string} text
 * @param {string} kind
 */
function message(text, kind) {
  say($("accounts-message"), text, kind);
}

/** @param {unknown} error */
function fail(error) {
  if (!handledElsewhere(error)) message(asError(error).message, "error");
}

/**
 * The countdown text for a cooldown ending at `until` (epoch seconds).
 * @param {number} until
 */
function countdownText(until) {
  const left = until - Date.now() / 1000;
  return left > 0 ? clock(left) + " left" : "ending…";
}

/** Called every second: cooldowns count down without asking the gateway. */
export function tick() {
  for (const node of document.querySelectorAll("#accounts-table [data-until]")) {
    if (node instanceof HTMLElement) node.textContent = countdownText(Number(node.dataset.until));
  }
}

/** @param {Account} account */
function modelsCell(account) {
  const models = account.models || [];
  if (account.kind !== "openai-compatible") return el("td", { class: "muted" }, "all iFlow models");
  if (!models.length) return el("td", { class: "muted" }, "from its /models");
  const more = models.length > 3 ? " +" + (models.length - 3) + " more" : "";
  return el("td", { title: models.join(", ") }, models.slice(0, 3).join(", ") + more);
}

/**
 * States whose name is not what a person reads; the others show as they are.
 * @type {Record<string, string>}
 */
const STATE_LABELS = { "out-of-credit": "out of credit" };

/** @param {Account} account */
function stateCell(account) {
  const badge = el("span", { class: "state state-" + account.state, "data-testid": "account-state" },
    STATE_LABELS[account.state] || account.state);
  const cell = el("td", {}, badge);
  if (account.state === "cooling" && account.until) {
    cell.append(" ", el("span", {
      class: "countdown", "data-testid": "countdown", "data-until": account.until,
      title: "until " + new Date(account.until * 1000).toLocaleTimeString(),
    }, countdownText(account.until)));
  }
  // Only an iFlow login is ever logged in again; an OpenAI-compatible account has a key, not a login.
  if (account.state === "needs-login" && account.kind === "iflow-oauth") {
    cell.append(el("div", { class: "muted small" }, "iFlow refused its login: log in again."));
  }
  if (account.reason && account.state !== "ok") {
    cell.append(el("div", { class: "muted small reason", "data-testid": "account-reason" }, account.reason));
  }
  return cell;
}

/**
 * @param {Account} account
 * @param {string} action
 * @param {string} label
 * @param {string} [className]
 */
function actionButton(account, action, label, className = "") {
  return el("button", {
    type: "button", class: "small " + className, "data-action": action, "data-id": account.id,
    "aria-label": label + " " + account.label,
  }, label);
}

/** States a person may end with the Reset button (a failed check too: a new Test is better). */
const RESETTABLE = ["cooling", "quarantined", "out-of-credit", "failing"];

/** @param {Account} account */
function actionsCell(account) {
  const buttons = [];
  if (account.enabled) buttons.push(actionButton(account, "disable", "Disable"));
  else buttons.push(actionButton(account, "enable", "Enable"));
  // Only OpenAI-compatible accounts are tested: iFlow shut down on 2026-04-17.
  if (account.kind === "openai-compatible") buttons.push(actionButton(account, "test", "Test"));
  if (RESETTABLE.includes(account.state)) buttons.push(actionButton(account, "reset", "Reset"));
  if (account.state === "needs-login" && account.kind === "iflow-oauth") buttons.push(actionButton(account, "login", "Log in"));
  // Accounts from the config file or the iFlow CLI's own login are not the page's to remove.
  if (account.source === "store") buttons.push(actionButton(account, "remove", "Remove", "danger"));
  return el("td", { class: "row-actions" }, ...buttons);
}

/** @param {Account} account */
function providerLabel(account) {
  if (!account.provider) return null;
  const byHost = account.provider_by_host;
  return el("div", {
    class: "muted small", "data-testid": "account-provider",
    title: byHost ? "chosen by its base URL's host" : "the provider it was given",
  }, account.provider + (byHost ? " (by host)" : ""));
}

/** @param {Account} account */
function accountRow(account) {
  const [source, sourceHelp] = SOURCES[account.source] || [account.source, ""];
  const errorRate = account.requests ? account.errors / account.requests : 0;
  return el("tr", { "data-id": account.id, "data-state": account.state, "data-source": account.source },
    el("td", {}, el("div", { class: "strong" }, account.label), el("div", { class: "muted small" }, account.id)),
    el("td", {}, el("span", { class: "nowrap" }, KINDS[account.kind] || account.kind),
      providerLabel(account),
      account.kind === "openai-compatible" ? el("div", { class: "muted small url" }, account.base_url) : null),
    el("td", { title: sourceHelp, class: "nowrap" }, source),
    el("td", {}, el("code", {}, account.secret)),
    modelsCell(account),
    stateCell(account),
    el("td", { class: "num" }, account.in_flight + " / " + (account.limit === null || account.limit === undefined ? "∞" : account.limit)),
    el("td", { class: "num" }, count(account.waiting)),
    el("td", { class: "num" }, count(account.requests)),
    el("td", { class: "num", title: percent(errorRate) + " of requests" }, count(account.errors)),
    actionsCell(account));
}

/**
 * The form's provider choices: "by host" first, then "any OpenAI-compatible server", then the
 * others; the choice made is kept.
 * @param {Provider[]} list
 */
function renderProviders(list) {
  providers = list;
  const select = $("account-provider", HTMLSelectElement);
  const chosen = select.value;
  const filled = select.options.length > 1;
  const ordered = [...list.filter((p) => p.name === GENERIC), ...list.filter((p) => p.name !== GENERIC)];
  select.replaceChildren(
    el("option", { value: BY_HOST }, "By its base URL's host (auto)"),
    ...ordered.map((p) => el("option", { value: p.name }, p.title + " (" + p.name + ")")));
  // Filled the first time (the form then holds only the placeholder choice): a preset, not "by host".
  if (!filled) presetProvider();
  else select.value = list.some((p) => p.name === chosen) ? chosen : BY_HOST;
}

/** The form's starting choice: the first provider preset, its base URL filled in (a new user has a key
 * from one of them; "by host" and "any server" stay a choice away). */
function presetProvider() {
  const preset = providers.find((p) => p.name !== GENERIC && p.base_url);
  $("account-provider", HTMLSelectElement).value = preset ? preset.name : BY_HOST;
  syncProviderUrl();
}

/** Choosing a provider puts its public base URL in the form (any other server: the user's own). */
function syncProviderUrl() {
  const input = $("account-base-url", HTMLInputElement);
  const chosen = providers.find((p) => p.name === $("account-provider", HTMLSelectElement).value);
  if (chosen && chosen.base_url) input.value = chosen.base_url;
  else if (providers.some((p) => p.base_url && p.base_url === input.value)) input.value = "";
}

/** @param {AccountList} data */
function render(data) {
  renderProviders(data.providers || []);
  const policy = $("accounts-policy");
  policy.replaceChildren(
    "Strategy: ", el("strong", { "data-testid": "strategy" }, STRATEGIES[data.strategy] ? data.strategy : String(data.strategy)),
    " · Affinity: ", el("strong", { "data-testid": "affinity" }, data.affinity ? "on" : "off"));
  policy.title = (STRATEGIES[data.strategy] || "") +
    (data.affinity ? "; a conversation stays on the account that served it" : "");
  const table = $("accounts-table");
  const body = tableBody(table);
  body.replaceChildren(...data.accounts.map(accountRow));
  if (!data.accounts.length) {
    body.append(placeholderRow(table, "No accounts yet: log in with iFlow, or add a key below."));
  }
  labelCells(table);
}

/** Fetch the accounts and show them if they changed. */
export const load = tableLoader("/api/accounts", render, message, fail);

/** @type {Record<string, string>} */
const DONE = { enable: "Enabled", disable: "Disabled", reset: "Reset", remove: "Removed" };

/**
 * Say what a check found, in the accounts' message box.
 * @param {string} label
 * @param {CheckResult | null | undefined} check
 * @param {string} [before] what came first ("Added x.")
 */
function showCheck(label, check, before = "") {
  if (!check) {
    message(before, "");
    return;
  }
  const words = label + (check.ok ? " works: " : " failed its test — ") + check.words.replace(/^works: /, "");
  message((before ? before + " " : "") + words, check.ok ? "" : "error");
  $("accounts-message").dataset.check = check.ok ? "ok" : check.problem || "failed";
}

/**
 * The Test button: check the account again; the table then shows its new state.
 * @param {string} id
 * @param {string} label
 */
async function test(id, label) {
  message(`Testing ${label}: listing its models and sending a one-token request…`, "");
  try {
    const answer = await api("/api/accounts/test", { id });
    showCheck(label, answer && answer.check);
    await load();
  } catch (error) { fail(error); }
}

/**
 * @param {string} id
 * @param {string} action
 * @param {string} label
 */
async function act(id, action, label) {
  if (action === "login") {
    await startBrowserLogin("accounts").catch(fail);
    return;
  }
  if (action === "test") {
    await test(id, label);
    return;
  }
  if (action === "remove") {
    const sure = await confirmAction(
      `Remove the account “${label}”? The gateway stops using it and forgets its key.`, "Remove");
    if (!sure) return;
  }
  try {
    await api("/api/accounts/action", { id, action });
    message(`${DONE[action]} ${label}.`, "");
    await load();
  } catch (error) { fail(error); }
}

function syncKindFields() {
  const openai = $("account-kind", HTMLSelectElement).value === "openai-compatible";
  $("account-base-url-row").hidden = !openai;
  $("account-provider-row").hidden = !openai;
  $("account-models-row").hidden = !openai;
  $("account-base-url", HTMLInputElement).required = openai;
}

/**
 * What the form sends to POST /api/accounts.
 * @typedef {{ kind: string, label: string, api_key: string, provider?: string, base_url?: string, models?: string[], concurrency?: number | null }} NewAccount
 */

/** @param {SubmitEvent} event */
async function addAccount(event) {
  event.preventDefault();
  const kind = $("account-kind", HTMLSelectElement).value;
  /** @type {NewAccount} */
  const body = {
    kind,
    label: $("account-label", HTMLInputElement).value.trim(),
    api_key: $("account-key", HTMLInputElement).value.trim(),
  };
  if (kind === "openai-compatible") {
    const provider = $("account-provider", HTMLSelectElement).value;
    if (provider !== BY_HOST) body.provider = provider;
    body.base_url = $("account-base-url", HTMLInputElement).value.trim();
    body.models = splitList($("account-models", HTMLInputElement).value);
  }
  body.concurrency = optionalInt($("account-concurrency", HTMLInputElement));
  if (kind === "openai-compatible") message(`Adding ${body.label} and testing it…`, "");
  try {
    const created = await api("/api/accounts", body);
    $("account-form", HTMLFormElement).reset();
    presetProvider();
    syncKindFields();
    const label = (created && created.account && created.account.label) || body.label;
    showCheck(label, created && created.check, `Added ${label}.`);
    await load();
  } catch (error) { fail(error); }
}

/** @param {(view: string) => void} showView */
export function wire(showView) {
  $("accounts-table").addEventListener("click", (event) => {
    const button = closest(event, "button[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    act(button.dataset.id || "", button.dataset.action || "", row ? find(row, ".strong").textContent || "" : "");
  });
  $("account-kind").addEventListener("change", syncKindFields);
  $("account-provider").addEventListener("change", syncProviderUrl);
  $("account-form").addEventListener("submit", addAccount);
  $("account-add-login").addEventListener("click", () => startBrowserLogin("accounts").catch(fail));
  $("account-code-flow").addEventListener("click", (event) => {
    event.preventDefault();
    showView("overview");
    const codeFlow = $("code-flow", HTMLDetailsElement);
    codeFlow.open = true;
    codeFlow.scrollIntoView({ behavior: "smooth" });
  });
  syncKindFields();
}
