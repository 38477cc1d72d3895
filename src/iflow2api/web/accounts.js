// @ts-check
// The accounts section: the pool's upstream accounts, their state, and adding or managing them.

import { api, tableLoader } from "./api.js";
import {
  $, closest, confirmAction, el, find, labelCells, optionalInt, placeholderRow, splitList, tableBody,
} from "./dom.js";
import { clock, count, percent } from "./format.js";
import { language, onLanguageChange, t, tn } from "./i18n.js";
import { providerTitle, startBrowserLogin } from "./overview.js";
import { datum, messageBox, phrase, words } from "./phrase.js";

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
 * What a check of an account found (services/account_check.py): it works, or the problem. The page
 * says it in its own words from these fields; `words` is the same in English, for the CLI.
 * @typedef {object} CheckResult
 * @property {boolean} ok
 * @property {string} words
 * @property {string | null} problem "wrong-key", "wrong-base-url", "out-of-credit", "rate-limited", "unreachable", "model", "failed"
 * @property {number | null} latency_ms
 * @property {number | null} models how many its /models listed (null: no list)
 * @property {string | null} model
 * @property {string} [detail] what the host said or did, in its own words (data)
 * @property {string | null} [suggestion] a base URL to try instead (the given one with /v1)
 */

/** The form's first choice: it sends no provider, so the base URL's host picks the profile. */
const BY_HOST = "";
/** The profile of any OpenAI-compatible server, listed right after BY_HOST: naming it pins
 * pass-through even on a known host (a proxy at api.deepseek.com, or a profile that misbehaves). */
const GENERIC = "generic";
/** @type {Provider[]} */
let providers = [];

/** The names the page has words for; any other (a newer gateway's) shows as it is, as data. */
const KINDS = ["iflow-oauth", "iflow-key", "openai-compatible"];
const SOURCES = ["iflow-cli", "config", "store"];
const STRATEGIES = ["round-robin", "fill-first"];
const STATES = ["ok", "cooling", "quarantined", "out-of-credit", "failing", "disabled", "needs-login"];

/**
 * The words for `name` when the page has them (`known`), else `name` itself as data.
 *   named(STATES, "cooling", (state) => t(`states.${state}`))
 * @param {string[]} known
 * @param {string} name
 * @param {(name: string) => string} wordsFor
 * @returns {string | Node}
 */
function named(known, name, wordsFor) {
  return known.includes(name) ? wordsFor(name) : datum(name);
}

const box = messageBox("accounts-message", () => t("accounts.error"));
/** What else must know that the pool changed (the header's badge and the overview): set by wire(). */
let statusChanged = () => Promise.resolve(false);

/** The table again, and the status: an account added, removed, tested or switched may start or stop serving. */
async function changed() {
  await load();
  await statusChanged();
}
const message = box.show;
const fail = box.fail;

/**
 * The countdown text for a cooldown ending at `until` (epoch seconds).
 * @param {number} until
 */
function countdownText(until) {
  const left = until - Date.now() / 1000;
  return left > 0 ? t("accounts.countdown.left", { time: clock(left) }) : t("accounts.countdown.ending");
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
  if (account.kind !== "openai-compatible") return el("td", { class: "muted" }, t("accounts.models.iflow"));
  if (!models.length) {
    return el("td", { class: "muted" }, ...phrase(t("accounts.models.listed"), { path: el("code", {}, "/models") }));
  }
  const first = el("span", { translate: "no", title: models.join(", ") }, models.slice(0, 3).join(", "));
  if (models.length <= 3) return el("td", {}, first);
  return el("td", {}, ...phrase(t("accounts.models.more"), { models: first, more: models.length - 3 }));
}

/** @param {Account} account */
function stateCell(account) {
  // data-state and the .state-<state> class keep the server's name; the badge shows the words for it.
  const badge = el("span", { class: "state state-" + account.state, "data-testid": "account-state" },
    named(STATES, account.state, (state) => t(`states.${state}`)));
  const cell = el("td", {}, badge);
  if (account.state === "cooling" && account.until) {
    const until = new Date(account.until * 1000).toLocaleTimeString(language());
    cell.append(" ", el("span", {
      class: "countdown", "data-testid": "countdown", "data-until": account.until,
      title: t("accounts.countdown.until", { time: until }),
    }, countdownText(account.until)));
  }
  // Only an iFlow login is ever logged in again; an OpenAI-compatible account has a key, not a login.
  if (account.state === "needs-login" && account.kind === "iflow-oauth") {
    cell.append(el("div", { class: "muted small" }, t("accounts.needs-login")));
  }
  if (account.reason && account.state !== "ok") {
    // The reason is the server's (English) record of what happened: data after the page's lead.
    cell.append(el("div", { class: "muted small reason", "data-testid": "account-reason" },
      ...phrase(t("accounts.reason"), { reason: account.reason })));
  }
  return cell;
}

/**
 * The id of the element that shows an account's label.
 * @param {Account} account
 */
function labelId(account) {
  return "account-label-" + account.id;
}

/**
 * @param {Account} account
 * @param {string} action "enable", "disable", "test", "reset", "login" or "remove"
 * @param {string} [className]
 */
function actionButton(account, action, className = "") {
  // Named by its own words and the account's label ("Disable team"), without words around data.
  const id = `account-${action}-${account.id}`;
  return el("button", {
    type: "button", class: "small " + className, "data-action": action, "data-id": account.id,
    id, "aria-labelledby": id + " " + labelId(account),
  }, t(`accounts.action.${action}`));
}

/** States a person may end with the Reset button (a failed check too: a new Test is better). */
const RESETTABLE = ["cooling", "quarantined", "out-of-credit", "failing"];

/** @param {Account} account */
function actionsCell(account) {
  const buttons = [];
  buttons.push(actionButton(account, account.enabled ? "disable" : "enable"));
  // Only OpenAI-compatible accounts are tested: iFlow shut down on 2026-04-17.
  if (account.kind === "openai-compatible") buttons.push(actionButton(account, "test"));
  if (RESETTABLE.includes(account.state)) buttons.push(actionButton(account, "reset"));
  if (account.state === "needs-login" && account.kind === "iflow-oauth") buttons.push(actionButton(account, "login"));
  // Accounts from the config file or the iFlow CLI's own login are not the page's to remove.
  if (account.source === "store") buttons.push(actionButton(account, "remove", "danger"));
  return el("td", { class: "row-actions" }, ...buttons);
}

/** @param {Account} account */
function providerLabel(account) {
  if (!account.provider) return null;
  const byHost = account.provider_by_host;
  const provider = datum(account.provider);
  return el("div", {
    class: "muted small", "data-testid": "account-provider",
    title: byHost ? t("accounts.provider.by-host.help") : t("accounts.provider.given.help"),
  }, ...(byHost ? phrase(t("accounts.provider.by-host"), { provider }) : [provider]));
}

/** @param {Account} account */
function accountRow(account) {
  const known = SOURCES.includes(account.source);
  const errorRate = account.requests ? account.errors / account.requests : 0;
  return el("tr", { "data-id": account.id, "data-state": account.state, "data-source": account.source },
    el("td", { translate: "no" },
      el("div", { class: "strong", id: labelId(account) }, account.label), el("div", { class: "muted small" }, account.id)),
    el("td", {}, el("span", { class: "nowrap" }, named(KINDS, account.kind, (kind) => t(`accounts.kind.${kind}`))),
      providerLabel(account),
      account.kind === "openai-compatible" ? el("div", { class: "muted small url", translate: "no" }, account.base_url) : null),
    el("td", { title: known ? t(`accounts.source.${account.source}.help`) : null, class: "nowrap" },
      named(SOURCES, account.source, (source) => t(`accounts.source.${source}`))),
    el("td", {}, el("code", {}, account.secret)),
    modelsCell(account),
    stateCell(account),
    el("td", { class: "num" }, account.in_flight + " / " + (account.limit === null || account.limit === undefined ? "∞" : account.limit)),
    el("td", { class: "num" }, count(account.waiting)),
    el("td", { class: "num" }, count(account.requests)),
    el("td", { class: "num", title: t("accounts.errors.rate", { rate: percent(errorRate) }) }, count(account.errors)),
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
    el("option", { value: BY_HOST }, t("accounts.add.by-host")),
    ...ordered.map((p) => el("option", { value: p.name },
      // The server's titles are product names, but for the one that names no product.
      (p.name === GENERIC ? t("accounts.add.generic") : providerTitle(p)) + " (" + p.name + ")")));
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
function renderPolicy(data) {
  const policy = $("accounts-policy");
  const known = STRATEGIES.includes(data.strategy);
  policy.replaceChildren(...phrase(t("accounts.policy"), {
    strategy: el("strong", { "data-testid": "strategy" },
      named(STRATEGIES, String(data.strategy), (name) => t(`accounts.strategy.${name}`))),
    affinity: el("strong", { "data-testid": "affinity" }, data.affinity ? t("accounts.affinity.on") : t("accounts.affinity.off")),
  }));
  const help = known ? t(`accounts.strategy.${data.strategy}.help`) : "";
  policy.title = data.affinity ? t("accounts.policy.sticky", { strategy: help }) : help;
}

/**
 * The accounts last shown: a switch of language shows them again in the new words.
 * @type {AccountList | null}
 */
let last = null;

/** @param {AccountList} data */
function render(data) {
  last = data;
  renderProviders(data.providers || []);
  renderPolicy(data);
  const table = $("accounts-table");
  const body = tableBody(table);
  body.replaceChildren(...data.accounts.map(accountRow));
  if (!data.accounts.length) body.append(placeholderRow(table, t("accounts.empty")));
  labelCells(table);
}

/** Fetch the accounts and show them if they changed. */
export const load = tableLoader("/api/accounts", render, box.text, fail);

/** Problems the page has words for; any other is said as "failed". */
const PROBLEMS = ["wrong-key", "wrong-base-url", "out-of-credit", "rate-limited", "unreachable", "model", "failed"];

/**
 * What a failed check found: the page's words for its problem, the host's own (data), and the base
 * URL to try when there is one.
 * @param {CheckResult} check
 */
function problemWords(check) {
  let problem = check.problem && PROBLEMS.includes(check.problem) ? check.problem : "failed";
  // A /models that lists nothing is a "model" problem that the CLI words as a plain failure.
  if (problem === "model" && check.models === 0) problem = "failed";
  const said = phrase(t(`check.problem.${problem}`), { detail: check.detail || "" });
  if (!check.suggestion) return said;
  return phrase(t("check.suggestion"), { problem: words(said), suggestion: check.suggestion });
}

/**
 * A check's verdict in the page's words: "team works: deepseek-chat answered in 340 ms; 2 models listed".
 * @param {string} label
 * @param {CheckResult} check
 */
function checkWords(label, check) {
  if (!check.ok) return phrase(t("check.failed"), { label, problem: words(problemWords(check)) });
  const listed = check.models === null
    ? phrase(t("check.unlisted"), { path: el("code", {}, "/models") })
    : tn("check.listed", check.models);
  return phrase(t("check.works"), {
    label, model: check.model || "", latency: check.latency_ms ?? 0, listed: words(listed),
  });
}

/**
 * Say what a check found, in the accounts' message box, after what came first ("Added x.").
 * @param {string} label
 * @param {CheckResult | null | undefined} check
 * @param {() => Array<string | Node>} [before]
 */
function showCheck(label, check, before = () => []) {
  if (!check) {
    message(before, "");
    return;
  }
  message(() => {
    const verdict = checkWords(label, check);
    const first = before();
    return first.length ? phrase(t("accounts.then"), { first: words(first), then: words(verdict) }) : verdict;
  }, check.ok ? "" : "error");
  $("accounts-message").dataset.check = check.ok ? "ok" : check.problem || "failed";
}

/**
 * The Test button: check the account again; the table then shows its new state.
 * @param {string} id
 * @param {string} label
 */
async function test(id, label) {
  message(() => phrase(t("accounts.testing"), { label }), "");
  try {
    const answer = await api("/api/accounts/test", { id });
    showCheck(label, answer && answer.check);
    await changed();
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
    const sure = await confirmAction(t("accounts.remove.confirm", { label }), t("accounts.action.remove"));
    if (!sure) return;
  }
  try {
    await api("/api/accounts/action", { id, action });
    message(() => phrase(t(`accounts.done.${action}`), { label }), "");
    await changed();
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
  if (kind === "openai-compatible") message(() => phrase(t("accounts.adding"), { label: body.label }), "");
  try {
    const created = await api("/api/accounts", body);
    $("account-form", HTMLFormElement).reset();
    presetProvider();
    syncKindFields();
    const label = (created && created.account && created.account.label) || body.label;
    showCheck(label, created && created.check, () => phrase(t("accounts.added"), { label }));
    await changed();
  } catch (error) { fail(error); }
}

/**
 * @param {(view: string) => void} showView
 * @param {() => Promise<boolean>} refreshStatus
 */
export function wire(showView, refreshStatus) {
  statusChanged = refreshStatus;
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
  // The link comes with its sentence from the catalog (data-i18n-html), made anew at each switch.
  $("view-accounts").addEventListener("click", (event) => {
    if (!closest(event, "#account-code-flow")) return;
    event.preventDefault();
    showView("overview");
    const codeFlow = $("code-flow", HTMLDetailsElement);
    codeFlow.open = true;
    codeFlow.scrollIntoView({ behavior: "smooth" });
  });
  syncKindFields();
  onLanguageChange(() => {
    if (last) render(last);
    box.again();
  });
}
