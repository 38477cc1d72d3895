// @ts-check
// The page around the sections: which one is open (the address's #fragment), the admin sign-in that
// locks them, and the status that the header and the overview show.

import * as accounts from "./accounts.js";
import { ApiError, api, asError } from "./api.js";
import { $, closest, el, find, say } from "./dom.js";
import { LANGUAGES, choose, language, onLanguageChange, t } from "./i18n.js";
import { phrase, words } from "./phrase.js";
import * as keys from "./keys.js";
import * as overview from "./overview.js";
import * as playground from "./playground.js";
import * as usage from "./usage.js";

const VIEWS = ["overview", "accounts", "keys", "usage", "playground"];
/** @type {Partial<Record<string, () => Promise<void>>>} */
const LOADERS = { accounts: accounts.load, keys: keys.load, usage: usage.load, playground: playground.load };

const page = { view: viewFromAddress(), locked: false, ready: false, adminRequired: false };

function viewFromAddress() {
  const name = location.hash.replace(/^#/, "");
  return VIEWS.includes(name) ? name : "overview";
}

function loadView() {
  const loader = LOADERS[page.view];
  return loader && !page.locked ? loader() : Promise.resolve();
}

/**
 * Open a section; `push` adds it to the history so Back returns to the previous one.
 * @param {string} name
 * @param {boolean} [push]
 */
export function showView(name, push = false) {
  page.view = VIEWS.includes(name) ? name : "overview";
  if (push) history.pushState(null, "", page.view === "overview" ? location.pathname : "#" + page.view);
  for (const view of VIEWS) $("view-" + view).hidden = page.locked || !page.ready || view !== page.view;
  for (const tab of $("tabs").querySelectorAll("a[data-view]")) {
    if (!(tab instanceof HTMLElement)) continue;
    if (tab.dataset.view === page.view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  return loadView();
}

/** Admin sign-in needed: show only the sign-in form (the first password's, only when the status offers it). */
export function lock() {
  const fresh = $("signin").hidden;
  page.locked = true;
  $("signin").hidden = false;
  $("first-password-form").hidden = true;
  if (fresh) $("signin-secret").focus();
  $("tabs").hidden = true;
  $("badge").hidden = true;
  $("signout").hidden = true;
  showView(page.view);
}

/**
 * Show what a signed-in (or key-less) gateway's status allows; true when that (re)loaded the section.
 * @param {overview.Status} status
 */
function unlock(status) {
  const wasLocked = page.locked || !page.ready;
  page.locked = false;
  page.ready = true;
  $("signin").hidden = true;
  $("tabs").hidden = false;
  page.adminRequired = Boolean(status.admin && status.admin.required);
  $("signout").hidden = !(page.adminRequired && status.admin && status.admin.signed_in);
  overview.renderBadge(status);
  overview.render(status);
  if (wasLocked) showView(page.view);
  return wasLocked;
}

/** Whether the gateway had keys (and so a sign-in) at the last status. */
export function adminRequired() {
  return page.adminRequired;
}

/**
 * Ask for the status and show what it allows; true when that already (re)loaded the open section.
 * @returns {Promise<boolean>}
 */
export async function refreshStatus() {
  try {
    /** @type {overview.Status} */
    const status = await api("/api/status");
    say($("page-message"), "");
    $("version").textContent = "v" + status.version;
    const admin = status.admin || { required: false, signed_in: false, first_password: false };
    if (admin.required && !admin.signed_in) {
      lock();
      // No admin password yet, and this visit comes from the gateway's own machine.
      $("first-password-form").hidden = !admin.first_password;
      return true;
    }
    return unlock(status);
  } catch (error) {
    say($("page-message"), words(phrase(t("page.unreachable"), { detail: asError(error).message })), "error");
    return true;
  }
}

/** Every few seconds and when the tab is shown again: the status, then the open section. */
export async function poll() {
  if (document.visibilityState !== "visible") return;
  if (!(await refreshStatus())) await loadView();
}

/** The cooldowns' countdowns, while the accounts are on screen. */
export function tick() {
  if (page.view === "accounts" && !page.locked) accounts.tick();
}

export function wireSignIn() {
  const secret = $("signin-secret", HTMLInputElement);
  for (const choice of document.querySelectorAll("input[name=signin-kind]")) {
    if (!(choice instanceof HTMLInputElement)) continue;
    choice.addEventListener("change", () => {
      const label = $("signin-secret-label");
      // The label's key follows the choice, so a switch of language keeps its meaning.
      label.dataset.i18n = `signin.secret.${choice.value}`;
      label.textContent = t(`signin.secret.${choice.value}`);
      secret.autocomplete = choice.value === "password" ? "current-password" : "off";
      secret.focus();
    });
  }
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = /** @type {HTMLInputElement} */ (find(document, "input[name=signin-kind]:checked")).value;
    try {
      await api("/api/session", { [kind]: secret.value });
      secret.value = "";
      say($("signin-message"), "");
      await refreshStatus();
    } catch (error) {
      // Always said here, whatever the code: this form is where a refusal must show.
      say($("signin-message"), error instanceof ApiError && error.status === 401
        ? (kind === "password" ? t("signin.wrong_password") : t("signin.not_admin_key"))
        : words(phrase(t("signin.failed"), { detail: asError(error).message })), "error");
    }
  });
  $("first-password-form").addEventListener("submit", setFirstPassword);
  $("signout").addEventListener("click", async () => {
    try {
      await api("/api/session/end", {});
    } catch (_) {
      // Signed out already, or the gateway is gone: either way, start again from the sign-in view.
    }
    // A fresh page drops everything the last session loaded.
    location.replace(location.pathname);
  });
}

/** @param {SubmitEvent} event */
async function setFirstPassword(event) {
  event.preventDefault();
  const password = $("first-password", HTMLInputElement);
  const again = $("first-password-again", HTMLInputElement);
  if (password.value !== again.value) {
    say($("first-password-message"), t("firstpw.differ"), "error");
    return;
  }
  try {
    await api("/api/admin-password", { password: password.value });
    password.value = again.value = "";
    say($("first-password-message"), "");
    await refreshStatus();
  } catch (error) {
    say($("first-password-message"), words(phrase(t("firstpw.failed"), { detail: asError(error).message })), "error");
  }
}

/** The header's language switch; a switch re-renders the status and the open section in the new words. */
export function wireLanguage() {
  const select = $("language", HTMLSelectElement);
  for (const [code, name] of Object.entries(LANGUAGES)) select.append(el("option", { value: code, lang: code }, name));
  select.value = language();
  select.addEventListener("change", () => choose(select.value === "zh-CN" ? "zh-CN" : "en"));
  onLanguageChange(async () => {
    select.value = language();
    if (!(await refreshStatus())) await loadView();
  });
}

export function wireTabs() {
  $("tabs").addEventListener("click", (event) => {
    const tab = closest(event, "a[data-view]");
    if (!tab || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    showView(tab.dataset.view || "", true);
  });
  window.addEventListener("popstate", () => showView(viewFromAddress()));
}

/** Back from iFlow's login page: /?login=ok&account=... or /?login=error&message=... */
export function takeLoginResult() {
  const params = new URLSearchParams(location.search);
  if (!params.has("login")) return;
  const ok = params.get("login") === "ok";
  // A node is shown in one place: each box gets its own.
  const text = () => ok
    ? overview.loggedIn(params.get("account"))
    : overview.loginFailed(params.get("message") || t("login.unknown_error"));
  overview.showLoginMessage(text(), !ok);
  const from = sessionStorage.getItem(overview.RETURN_VIEW);
  sessionStorage.removeItem(overview.RETURN_VIEW);
  if (from === "accounts") {
    page.view = "accounts";
    say($("accounts-message"), text(), ok ? "" : "error");
  }
  history.replaceState(null, "", page.view === "overview" ? "/" : "/#" + page.view);
}
