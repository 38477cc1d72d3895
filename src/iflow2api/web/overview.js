// @ts-check
// The overview: whether the gateway serves, "Connect a provider" while nothing does, the iFlow login
// (by redirect or by pasted code; the original service, now the last choice), how to connect
// clients, and the models.

import { api, asError, handledElsewhere } from "./api.js";
import { $, closest, copyText, el, placeholderRow, say, tableBody } from "./dom.js";
import { when } from "./format.js";
import { firstModel, snippets } from "./snippets.js";

/**
 * What /api/status says (routes/web.py, status_document); signed out, only version and admin.
 * @typedef {object} Status
 * @property {string} version
 * @property {{ required: boolean, signed_in: boolean, first_password?: boolean }} [admin]
 * @property {boolean} [serving] an enabled account can take a request now, whatever its provider
 * @property {number} [serving_accounts]
 * @property {string[]} [serving_providers]
 * @property {string} [summary] "serving — 2 accounts: deepseek, moonshot", or why not
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
const IFLOW_GONE = "the original service, shut down on 2026-04-17";

/** Where the page goes back to after iFlow sends the browser home (sessionStorage; not a secret). */
export const RETURN_VIEW = "iflow2api-login-from";

/** @type {string | null} */
let pendingState = null;

/**
 * @param {HTMLElement} list
 * @param {string} name
 * @param {string | null | undefined} value
 */
function row(list, name, value) {
  list.append(el("dt", {}, name), el("dd", {}, value));
}

/**
 * @param {string} message
 * @param {boolean} isError
 */
export function showLoginMessage(message, isError) {
  say($("login-message"), message, isError ? "error" : "");
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
 * The header badge: whether the gateway serves (any provider's account counts, not only iFlow's).
 * @param {Status} status
 */
export function renderBadge(status) {
  const badge = $("badge");
  badge.hidden = false;
  badge.title = status.summary || "";
  if (status.serving) {
    badge.textContent = "serving"; badge.className = "badge ok";
  } else if (iflowNeedsLogin(status)) {
    badge.textContent = "log in again"; badge.className = "badge warn";
  } else {
    badge.textContent = "not serving"; badge.className = "badge bad";
  }
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
  const names = ordered.map((p) => p.name).join(",");
  if (box.dataset.names === names) return;
  box.dataset.names = names;
  box.replaceChildren(
    ...ordered.map((p) => el("button", { type: "button", "data-provider": p.name, title: p.base_url || "" }, p.title)),
    el("button", { type: "button", "data-provider": IFLOW_LOGIN, title: "iFlow: " + IFLOW_GONE }, "iFlow login"));
}

/** @param {Status} status */
export function render(status) {
  /** @type {Partial<Login>} */
  const login = status.login || {};
  renderConnect(status);
  const list = $("account");
  list.replaceChildren();
  row(list, "Status", status.summary);
  if (status.logged_in) {
    row(list, "Account", status.account || "(no name on file)");
    row(list, "Login", status.auth_type);
    row(list, "Upstream", status.upstream + " at " + status.base_url);
    row(list, "API key", status.api_key);
    if (login.token_expires_at) row(list, "Token expires", when(login.token_expires_at));
    if (login.next_refresh_at) row(list, "Next refresh", when(login.next_refresh_at));
    if (status.key_note) row(list, "Key expiry", status.key_note);
    if (iflowNeedsLogin(status)) row(list, "Attention", "iFlow refused the saved login: log in again.");
    if (login.last_error && login.state !== "ok") row(list, "Last refresh error", login.last_error);
  } else {
    row(list, "iFlow login", "not logged in (needed only for iFlow, " + IFLOW_GONE + ")");
  }
  $("logout").hidden = !(status.logged_in && status.oauth_login);
  $("login").textContent = status.logged_in && status.upstream === "iflow" ? "Log in again" : "Log in with iFlow";

  const served = status.served_models || [];
  const models = served.length ? served : status.models || [];
  $("base-url").textContent = location.origin + "/v1";
  const texts = snippets({ origin: location.origin, model: firstModel(served), keyNeeded: Boolean(status.needs_client_key) });
  for (const [id, text] of Object.entries(texts)) $(id).textContent = text;

  const table = $("models");
  const body = tableBody(table);
  body.replaceChildren();
  if (!models.length) {
    body.append(placeholderRow(table, status.serving
      ? "The accounts' models are listed at /v1/models."
      : "The models appear once a provider is connected."));
  }
  for (const m of models) {
    body.append(el("tr", {},
      el("td", {}, m.id),
      el("td", {}, m.name || ""),
      el("td", { class: "num" }, m.context_length ? m.context_length.toLocaleString() : ""),
      el("td", { class: "num" }, m.max_output_tokens ? m.max_output_tokens.toLocaleString() : "")));
  }

  const aliases = Object.entries(status.aliases || {});
  $("aliases-block").hidden = !aliases.length;
  tableBody($("aliases")).replaceChildren(
    ...aliases.map(([asked, served]) => el("tr", {}, el("td", {}, asked), el("td", {}, served))));
}

/**
 * Only web addresses may become links or navigations (never javascript: and friends).
 * @param {unknown} url
 * @returns {string}
 */
function webAddress(url) {
  if (!/^https?:\/\//i.test(String(url))) throw new Error("The gateway gave an unexpected login address.");
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
  /** @param {unknown} error */
  const fail = (error) => { if (!handledElsewhere(error)) showLoginMessage(asError(error).message, true); };

  $("connect-providers").addEventListener("click", (event) => {
    const button = closest(event, "button[data-provider]");
    if (button) connect(button.dataset.provider || "", showView).catch(fail);
  });

  $("login").addEventListener("click", () => startBrowserLogin("overview").catch(fail));

  $("logout").addEventListener("click", async () => {
    try {
      await api("/api/logout", {});
      showLoginMessage("Logged out.", false);
      await refreshStatus();
    } catch (error) { fail(error); }
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
      showLoginMessage("Logged in" + (done.account ? " as " + done.account : "") + ".", false);
      await refreshStatus();
    } catch (error) { fail(error); }
  });

  for (const button of document.querySelectorAll("[data-copy]")) {
    if (!(button instanceof HTMLElement)) continue;
    button.addEventListener("click", () => copyText(button, $(button.dataset.copy || "").textContent || ""));
  }
}
