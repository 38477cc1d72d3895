// @ts-check
// The overview: the iFlow login (by redirect or by pasted code), how to connect, and the models.

import { api, asError, handledElsewhere } from "./api.js";
import { $, copyText, el, placeholderRow, say, tableBody } from "./dom.js";
import { when } from "./format.js";

/**
 * What /api/status says (routes/web.py, status_document); signed out, only version and admin.
 * @typedef {object} Status
 * @property {string} version
 * @property {{ required: boolean, signed_in: boolean }} [admin]
 * @property {boolean} [logged_in]
 * @property {string | null} [account]
 * @property {string | null} [auth_type]
 * @property {boolean} [oauth_login]
 * @property {string | null} [upstream]
 * @property {string | null} [base_url]
 * @property {string | null} [api_key]
 * @property {string | null} [key_note]
 * @property {Login} [login]
 * @property {boolean} [needs_client_key]
 * @property {Model[]} [models]
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
 * The header badge: the iFlow login's state.
 * @param {Status} status
 */
export function renderBadge(status) {
  const badge = $("badge");
  badge.hidden = false;
  badge.title = "The iFlow login of this gateway";
  if (!status.logged_in) {
    badge.textContent = "not logged in"; badge.className = "badge bad";
  } else if (status.login && status.login.state === "needs-login") {
    badge.textContent = "log in again"; badge.className = "badge warn";
  } else {
    badge.textContent = "logged in"; badge.className = "badge ok";
  }
}

/** @param {Status} status */
export function render(status) {
  /** @type {Partial<Login>} */
  const login = status.login || {};
  const list = $("account");
  list.replaceChildren();
  if (status.logged_in) {
    row(list, "Account", status.account || "(no name on file)");
    row(list, "Login", status.auth_type);
    row(list, "Upstream", status.upstream + " at " + status.base_url);
    row(list, "API key", status.api_key);
    if (login.token_expires_at) row(list, "Token expires", when(login.token_expires_at));
    if (login.next_refresh_at) row(list, "Next refresh", when(login.next_refresh_at));
    if (status.key_note) row(list, "Key expiry", status.key_note);
    if (login.state === "needs-login") row(list, "Attention", "iFlow refused the saved login: log in again.");
    if (login.last_error && login.state !== "ok") row(list, "Last refresh error", login.last_error);
  } else {
    row(list, "Status", "No iFlow credentials yet. Log in with iFlow below.");
  }
  $("logout").hidden = !(status.logged_in && status.oauth_login);
  $("login").textContent = status.logged_in ? "Log in again" : "Log in with iFlow";

  const base = location.origin + "/v1";
  const models = status.models || [];
  const model = (models[0] && models[0].id) || "glm-4.7";
  const keyNeeded = status.needs_client_key;
  $("base-url").textContent = base;
  $("curl").textContent =
    "curl " + base + "/chat/completions \\\n  -H 'content-type: application/json' \\\n" +
    (keyNeeded ? "  -H 'authorization: Bearer <a client key of this gateway>' \\\n" : "") +
    "  -d '{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'";
  $("python").textContent =
    "from openai import OpenAI\n\nclient = OpenAI(base_url=\"" + base + "\", api_key=\"" +
    (keyNeeded ? "<a client key of this gateway>" : "unused") + "\")\n" +
    "reply = client.chat.completions.create(\n    model=\"" + model + "\",\n" +
    "    messages=[{\"role\": \"user\", \"content\": \"Hello\"}],\n)\nprint(reply.choices[0].message.content)";

  const table = $("models");
  const body = tableBody(table);
  body.replaceChildren();
  if (!models.length) {
    body.append(placeholderRow(table, status.logged_in
      ? "This upstream lists its models at /v1/models."
      : "The models appear once you are logged in."));
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

/** @param {() => Promise<unknown>} refreshStatus */
export function wire(refreshStatus) {
  /** @param {unknown} error */
  const fail = (error) => { if (!handledElsewhere(error)) showLoginMessage(asError(error).message, true); };

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
