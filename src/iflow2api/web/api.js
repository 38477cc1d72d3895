// @ts-check
// Talking to the gateway's management API: same origin, the session cookie, JSON both ways.

import { language } from "./i18n.js";

/** A refused call, carrying the gateway's error code ("admin_required", "invalid_request_error"...). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string | null} code
   */
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @type {{ adminRequired: (error: ApiError) => void }} */
const apiListeners = { adminRequired: () => {} };

/**
 * Called whenever the gateway answers 401 admin_required: the session is gone or never was.
 * @param {(error: ApiError) => void} callback
 */
export function onAdminRequired(callback) {
  apiListeners.adminRequired = callback;
}

/**
 * GET when no body is given, POST with a JSON body otherwise. The answer is the gateway's JSON, as
 * each section's renderer describes it.
 *   await api("/api/keys")
 *   await api("/api/keys/revoke", { id: "key-1" })
 * @param {string} path
 * @param {object} [body]
 * @returns {Promise<any>}
 */
export async function api(path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  /** @type {RequestInit} */
  const options = { credentials: "same-origin", headers };
  if (body !== undefined) {
    // The gateway only takes JSON here: a cross-site form cannot send this content type without a
    // preflight, which it never grants.
    options.method = "POST";
    headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) throw refusal(response.status, payload);
  return payload;
}

/**
 * The error for a refused call (`payload` its JSON body, or null), after telling the page when the
 * refusal means the session is gone:
 *   throw refusal(response.status, await response.json())
 * @param {number} status
 * @param {any} payload
 * @returns {ApiError}
 */
export function refusal(status, payload) {
  const error = (payload && payload.error) || {};
  const failure = new ApiError(status, error.message || "HTTP " + status, error.code || null);
  if (status === 401 && failure.code === "admin_required") apiListeners.adminRequired(failure);
  return failure;
}

/**
 * A loader for one section's table: fetches `path` and calls `render(data)` only when the data (or the
 * page's language) changed,
 * so a button is never swapped out from under a click. A failed load goes to `fail`; the message box
 * (`message`) is cleared by the next load that works.
 * @template T
 * @param {string} path
 * @param {(data: T) => void} render
 * @param {(text: string, kind: string) => void} message
 * @param {(error: Error) => void} fail
 * @returns {() => Promise<void>}
 */
export function tableLoader(path, render, message, fail) {
  let shown = "";
  let loadFailed = false;
  return async function load() {
    try {
      /** @type {T} */
      const data = await api(path);
      if (loadFailed) message("", "");
      loadFailed = false;
      // The language is part of what is shown: after a switch the same data renders again, in the new words.
      const fingerprint = language() + JSON.stringify(data);
      if (fingerprint !== shown) {
        shown = fingerprint;
        render(data);
      }
    } catch (error) {
      shown = "";
      loadFailed = true;
      fail(asError(error));
    }
  };
}

/**
 * What was thrown, as an Error (fetch and the API throw Errors; anything else is wrapped).
 * @param {unknown} thrown
 * @returns {Error}
 */
export function asError(thrown) {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

/**
 * Whether the page already switched to the sign-in view for this failure (no message needed).
 * @param {unknown} error
 */
export function handledElsewhere(error) {
  return error instanceof ApiError && error.code === "admin_required";
}
