// @ts-check
// The overview: whether the gateway serves, "Connect a provider" while nothing does, the iFlow login
// (by redirect or by pasted code; the original service, now the last choice), how to connect
// clients, and the models.

import { api, asError, handledElsewhere } from "./api.js";
import { $, closest, copyText, el, placeholderRow, say, tableBody } from "./dom.js";
import { count, when } from "./format.js";
import { language, t, tn } from "./i18n.js";
import { phrase, words } from "./phrase.js";
import { firstModel, snippets } from "./snippets.js";

/**
 * What /api/status says (routes/web.py, status_document); signed out, only version and admin.
 * @typedef {object} Status
 * @property {string} version
 * @property {{ required: boolean, signed_in: boolean, first_password?: boolean }} [admin]
 * @property {boolean} [serving] an enabled account can take a request now, whatever its provider
 * @property {number} [serving_accounts]
 * @property {string[]} [serving_providers]
 * @property {number} [connected_accounts] every account of the pool, serving or not
 * @property {string} [summary] "serving — 2 accounts: deepseek, moonshot", or why not (English: the
 *   page says it in its own words, summary(), from the fields above)
 * @property {Provider[]} [providers] what "Connect a provider" offers (as /api/accounts lists them)
 * @property {boolean} [logged_in] the iFlow CLI's own files hold a login or key (not "ready": see serving)
 * @property {string | null} [account]
 * @property {string | null} [auth_type]
 * @property {boolean} [oauth_login]
 * @property {string | null} [upstream]
 * @property {string | null} [base_url]
 * @property {string | null} [api_key]
 * @property {string | null} [key_note]
 * @property {Login} [login]
 * @property {boolean} [needs_client_key]
 * @property {Model[]} [models] iFlow's catalogue, with an iFlow login
 * @property {Model[]} [served_models] what /v1/models lists now (empty with nothing served)
 * @property {Record<string, string>} [aliases]
 */

/**
 * @typedef {object} Login
 * @property {string} state "ok", "needs-login", "no-login"...
 * @property {number | null} [token_expires_at]
 * @property {number | null} [next_refresh_at]
 * @property {number | null} [last_refresh_at]
 * @property {string | null} [last_error]
 */

/** @typedef {{ id: string, name?: string, context_length?: number, max_output_tokens?: number }} Model */

/** @typedef {{ name: string, title: string, base_url: string }} Provider */

/** The profile of "any other OpenAI-compatible server": listed after the presets. */
const GENERIC = "generic";
/** The last choice of "Connect a provider": the iFlow login on this section. */
const IFLOW_LOGIN = "iflow-login";

/** Where the page goes back to after iFlow sends the browser home (sessionStorage; not a secret). */
export const RETURN_VIEW = "iflow2api-login-from";

/** @type {string | null} */
let pendingState = null;

/**
 * A row of the Account card; `data` marks a value that is data (a label, a key), not words.
 * @param {HTMLElement} list
 * @param {string} name
 * @param {string | Node | null | undefined} value
 * @param {boolean} [data]
 */
function row(list, name, value, data = false) {
  list.append(el("dt", {}, name), el("dd", data ? { translate: "no" } : {}, value));
}

/**
 * @param {string | Node} message
 * @param {boolean} isError
 */
export function showLoginMessage(message, isError) {
  say($("login-message"), message, isError ? "error" : "");
}

/**
 * "Logged in as me@example.com." (the account as data), or "Logged in." without a name.
 * @param {string | null | undefined} account
 */
export function loggedIn(account) {
  return account ? words(phrase(t("login.done_as"), { account })) : t("login.done");
}

/**
 * "Login failed: " and the reason, which is the gateway's or iFlow's own (English) words.
 * @param {string} detail
 */
export function loginFailed(detail) {
  return words(phrase(t("login.failed"), { detail }));
}

/**
 * Whether the account in use is an iFlow login that iFlow refused. An OpenAI-compatible account
 * never needs one: a refused iFlow login left in ~/.iflow is not what it serves with.
 * @param {Status} status
 */
function iflowNeedsLogin(status) {
  return Boolean(status.login && status.login.state === "needs-login" && status.upstream !== "openai-compatible");
}

/**
 * The status's one line in the page's words, from its fields: in English the same as its summary,
 * "serving — 2 accounts: deepseek, moonshot", "not serving — none of its 3 accounts can serve now"
 * or "not serving — no provider connected yet".
 * @param {Status} status
 */
export function summary(status) {
  if (status.serving) {
    const providers = (status.serving_providers || []).join(t("common.list_separator"));
    return tn("overview.summary.serving", status.serving_accounts || 0, { providers });
  }
  const connected = status.connected_accounts || 0;
  return connected ? tn("overview.summary.stuck", connected) : t("overview.summary.empty");
}

/**
 * The header badge: whether the gateway serves (any provider's account counts, not only iFlow's).
 * @param {Status} status
 */
export function renderBadge(status) {
  const badge = $("badge");
  badge.hidden = false;
  badge.title = summary(status);
  if (status.serving) {
    badge.textContent = t("header.badge.serving"); badge.className = "badge ok";
  } else if (iflowNeedsLogin(status)) {
    badge.textContent = t("header.badge.relogin"); badge.className = "badge warn";
  } else {
    badge.textContent = t("header.badge.idle"); badge.className = "badge bad";
  }
}

/**
 * A profile's name on its button, in the page's words ("Kimi（月之暗面）"); the gateway's own title for
 * a profile the catalogs do not know yet.
 * @param {Provider} provider
 */
export function providerTitle(provider) {
  const words = t(`connect.provider.${provider.name}`);
  return words === `connect.provider.${provider.name}` ? provider.title : words;
}

/**
 * "Connect a provider", shown while nothing serves: one button per profile (presets first, any other
 * OpenAI-compatible server next), the iFlow login last. Rebuilt only when the list changes, so a
 * refresh never takes a button from under the pointer.
 * @param {Status} status
 */
function renderConnect(status) {
  $("connect").hidden = Boolean(status.serving);
  const list = status.providers || [];
  const ordered = [...list.filter((p) => p.name !== GENERIC), ...list.filter((p) => p.name === GENERIC)];
  const box = $("connect-providers");
  // The language is part of what is shown: a switch rebuilds the buttons in the new words.
  const names = language() + ":" + ordered.map((p) => p.name).join(",");
  if (box.dataset.names === names) return;
  box.dataset.names = names;
  box.replaceChildren(
    // No base URL as a title: the Add-account form the button opens shows it, in a field.
    ...ordered.map((p) => el("button", { type: "button", "data-provider": p.name }, providerTitle(p))),
    el("button", { type: "button", "data-provider": IFLOW_LOGIN, title: t("connect.iflow_gone") }, t("connect.iflow")));
}

/** @param {Status} status */
export function render(status) {
  /** @type {Partial<Login>} */
  const login = status.login || {};
  renderConnect(status);
  const list = $("account");
  list.replaceChildren();
  row(list, t("overview.account.status"), summary(status));
  if (status.logged_in) {
    if (status.account) row(list, t("overview.account.account"), status.account, true);
    else row(list, t("overview.account.account"), t("overview.account.no_name"));
    row(list, t("overview.account.login"), status.auth_type, true);
    row(list, t("overview.account.upstream"),
      words(phrase(t("overview.account.upstream_at"), { upstream: status.upstream || "", base: status.base_url || "" })));
    row(list, t("overview.account.api_key"), status.api_key, true);
    if (login.token_expires_at) row(list, t("overview.account.token_expires"), when(login.token_expires_at));
    if (login.next_refresh_at) row(list, t("overview.account.next_refresh"), when(login.next_refresh_at));
    // The gateway's key_note is English; it is set only for iFlow, whose keys all last 7 days.
    if (status.key_note) row(list, t("overview.account.key_expiry"), t("overview.account.key_note"));
    if (iflowNeedsLogin(status)) row(list, t("overview.account.attention"), t("overview.account.refused"));
    if (login.last_error && login.state !== "ok") row(list, t("overview.account.last_error"), login.last_error, true);
  } else {
    row(list, t("overview.account.iflow_login"), t("overview.account.not_logged_in"));
  }
  $("logout").hidden = !(status.logged_in && status.oauth_login);
  $("login").textContent = status.logged_in && status.upstream === "iflow" ? t("login.again") : t("login.start");

  const served = status.served_models || [];
  const models = served.length ? served : status.models || [];
  $("base-url").textContent = location.origin + "/v1";
  const texts = snippets({ origin: location.origin, model: firstModel(served), keyNeeded: Boolean(status.needs_client_key) });
  for (const [id, text] of Object.entries(texts)) $(id).textContent = text;

  const table = $("models");
  const body = tableBody(table);
  body.replaceChildren();
  if (!models.length) {
    body.append(placeholderRow(table, status.serving ? t("models.listed_at") : t("models.none")));
  }
  for (const m of models) {
    body.append(el("tr", {},
      el("td", { translate: "no" }, m.id),
      el("td", { translate: "no" }, m.name || ""),
      el("td", { class: "num" }, m.context_length ? count(m.context_length) : ""),
      el("td", { class: "num" }, m.max_output_tokens ? count(m.max_output_tokens) : "")));
  }

  const aliases = Object.entries(status.aliases || {});
  $("aliases-block").hidden = !aliases.length;
  tableBody($("aliases")).replaceChildren(...aliases.map(([asked, served]) =>
    el("tr", {}, el("td", { translate: "no" }, asked), el("td", { translate: "no" }, served))));
}

/**
 * Only web addresses may become links or navigations (never javascript: and friends).
 * @param {unknown} url
 * @returns {string}
 */
function webAddress(url) {
  if (!/^https?:\/\//i.test(String(url))) throw new Error(t("login.bad_address"));
  return String(url);
}

/**
 * Send the browser to iFlow's login page; iFlow sends it back to /?login=ok|error.
 * @param {string} fromView the section to come back to
 */
export async function startBrowserLogin(fromView) {
  const started = await api("/api/login", { mode: "browser" });
  const url = webAddress(started.url);
  if (fromView && fromView !== "overview") sessionStorage.setItem(RETURN_VIEW, fromView);
  else sessionStorage.removeItem(RETURN_VIEW);
  location.assign(url);
}

/**
 * Open the Add-account form with `name` chosen, through the form's own controls (their change
 * handlers in accounts.js fill in what the choice implies, such as the preset's base URL).
 * @param {string} name
 * @param {(view: string) => Promise<void>} showView
 */
async function connect(name, showView) {
  if (name === IFLOW_LOGIN) {
    $("account-card").scrollIntoView({ behavior: "smooth" });
    $("login").focus();
    return;
  }
  await showView("accounts"); // loads the accounts, and with them the form's provider choices
  /** @type {[string, string][]} */
  const choices = [["account-kind", "openai-compatible"], ["account-provider", name]];
  for (const [id, value] of choices) {
    const select = $(id, HTMLSelectElement);
    select.value = value;
    select.dispatchEvent(new Event("change"));
  }
  const label = $("account-label", HTMLInputElement);
  if (!label.value) label.value = name;
  const form = $("account-form");
  form.scrollIntoView({ behavior: "smooth" });
  $("account-key").focus();
}

/**
 * @param {() => Promise<unknown>} refreshStatus
 * @param {(view: string) => Promise<void>} showView opens a section, adding it to the history
 */
export function wire(refreshStatus, showView) {
  /**
   * The API's reason (English, its own words) after what failed, in the page's words.
   * @param {unknown} error
   * @param {string} [lead] a catalog's text with {detail}
   */
  const fail = (error, lead = t("login.failed")) => {
    if (!handledElsewhere(error)) showLoginMessage(words(phrase(lead, { detail: asError(error).message })), true);
  };

  $("connect-providers").addEventListener("click", (event) => {
    const button = closest(event, "button[data-provider]");
    if (button) connect(button.dataset.provider || "", showView).catch((error) => fail(error, t("page.unreachable")));
  });

  $("login").addEventListener("click", () => startBrowserLogin("overview").catch(fail));

  $("logout").addEventListener("click", async () => {
    try {
      await api("/api/logout", {});
      showLoginMessage(t("login.logged_out"), false);
      await refreshStatus();
    } catch (error) { fail(error, t("login.logout_failed")); }
  });

  $("code-start").addEventListener("click", async () => {
    try {
      const started = await api("/api/login", { mode: "code" });
      $("code-link", HTMLAnchorElement).href = webAddress(started.url);
      pendingState = started.state;
      $("code-step").hidden = false;
    } catch (error) { fail(error); }
  });

  $("code-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("code-input", HTMLInputElement);
    try {
      const done = await api("/api/login/code", { text: input.value, state: pendingState });
      $("code-step").hidden = true;
      input.value = "";
      showLoginMessage(loggedIn(done.account), false);
      await refreshStatus();
    } catch (error) { fail(error); }
  });

  for (const button of document.querySelectorAll("[data-copy]")) {
    if (!(button instanceof HTMLElement)) continue;
    button.addEventListener("click", () => copyText(button, $(button.dataset.copy || "").textContent || ""));
  }
}
