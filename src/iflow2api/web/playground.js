// @ts-check
// The playground tab: one prompt to a served model, its answer streamed in as it comes, the reasoning
// folded above it, then the tokens and the time to the first token. It posts to the page's own route
// (/api/playground), which is the chat route itself: the request is served and recorded like any
// client's (usage row without a key name, metrics), but only with the page's session, same origin.

import { ApiError, api, refusal } from "./api.js";
import { $, el } from "./dom.js";
import { count, ms } from "./format.js";
import { onLanguageChange, t } from "./i18n.js";
import { messageBox } from "./phrase.js";

/** @typedef {{ id: string }} Model */

/**
 * Split what has arrived of an SSE stream into its events' data, and the unfinished rest:
 *   sseData('data: {"a":1}\n\ndata: [DO')  ->  [['{"a":1}'], 'data: [DO']
 * Comments (": keep-alive") and events without data yield nothing.
 * @param {string} text
 * @returns {[string[], string]}
 */
export function sseData(text) {
  const blocks = text.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop() || "";
  /** @type {string[]} */
  const data = [];
  for (const block of blocks) {
    const lines = block.split("\n").filter((line) => line.startsWith("data:"));
    if (lines.length) data.push(lines.map((line) => line.slice(5).replace(/^ /, "")).join("\n"));
  }
  return [data, rest];
}

/** The request running now, so Stop (or a second Send) can cancel it. */
const running = { controller: /** @type {AbortController | null} */ (null) };

/** The models the accounts serve (the API's /v1/models, for the page); the picker keeps the one chosen. */
export async function load() {
  /** @type {Model[]} */
  let models;
  try {
    models = (await api("/api/models")).data;
  } catch (error) {
    box.fail(error);
    return;
  }
  const picker = $("play-model", HTMLSelectElement);
  const ids = models.map((model) => model.id);
  $("play-empty").hidden = ids.length > 0;
  $("play-send", HTMLButtonElement).disabled = ids.length === 0;
  // Rebuilt only when the list changed, so a poll never resets the choice being made.
  if (ids.join("\n") === [...picker.options].map((option) => option.value).join("\n")) return;
  const chosen = picker.value;
  picker.replaceChildren(...ids.map((id) => el("option", { value: id }, id)));
  if (ids.includes(chosen)) picker.value = chosen;
}

/** The playground's message; a failure is the page's lead, then the API's or the host's own words. */
const box = messageBox("play-message", () => t("playground.failed"));

/**
 * Show one chunk of the answer; true when it carried text (the first such marks the first token).
 * @param {any} chunk
 */
function show(chunk) {
  if (chunk.error) throw new ApiError(0, chunk.error.message || t("playground.broke-off"), chunk.error.code || null);
  if (chunk.usage) {
    $("play-prompt-tokens").textContent = count(chunk.usage.prompt_tokens);
    $("play-completion-tokens").textContent = count(chunk.usage.completion_tokens);
  }
  const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
  const reasoning = delta.reasoning_content || delta.reasoning || "";
  if (reasoning) {
    $("play-reasoning").hidden = false;
    $("play-reasoning-text").append(reasoning);
  }
  if (delta.content) $("play-answer").append(delta.content);
  return Boolean(reasoning || delta.content);
}

function clear() {
  $("play-output").hidden = false;
  $("play-reasoning").hidden = true;
  $("play-reasoning", HTMLDetailsElement).open = false;
  for (const id of ["play-reasoning-text", "play-answer"]) $(id).textContent = "";
  for (const id of ["play-prompt-tokens", "play-completion-tokens", "play-ttft"]) $(id).textContent = "–";
}

/**
 * Send the prompt and stream the answer in; the time to first token is measured here, from the send
 * to the first text (reasoning or answer) that arrives.
 * @param {string} model
 * @param {string} prompt
 */
async function send(model, prompt) {
  running.controller?.abort();
  const controller = (running.controller = new AbortController());
  clear();
  box.show(() => []);
  $("play-stop").hidden = false;
  const began = performance.now();
  let waiting = true;
  try {
    const response = await fetch("/api/playground", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: prompt }],
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      let payload = null;
      try { payload = await response.json(); } catch (_) { payload = null; }
      throw refusal(response.status, payload);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const [data, unfinished] = sseData(rest + value);
      rest = unfinished;
      for (const item of data) {
        if (item === "[DONE]") continue;
        if (show(JSON.parse(item)) && waiting) {
          waiting = false;
          $("play-ttft").textContent = ms(performance.now() - began);
        }
      }
    }
  } catch (error) {
    if (controller.signal.aborted) box.show(() => [t("playground.stopped")]);
    else box.fail(error);
  } finally {
    if (running.controller === controller) {
      running.controller = null;
      $("play-stop").hidden = true;
    }
  }
}

export function wire() {
  $("play-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send($("play-model", HTMLSelectElement).value, $("play-prompt", HTMLTextAreaElement).value);
  });
  $("play-stop").addEventListener("click", () => running.controller?.abort());
  onLanguageChange(box.again);
}
