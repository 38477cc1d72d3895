// @ts-check
// The overview's copy-ready snippets: curl, Python, Claude Code, Codex and the chat apps' settings,
// as plain text from three facts (where the gateway is, a model it serves, whether it wants a key).
// Pure: no DOM, so what a snippet says is decided here and nowhere else.

/** Stands for a client key: the page never holds one, and a snippet must never show a stored secret. */
export const KEY_PLACEHOLDER = "sk-...your key...";
/** What a snippet names while nothing is served: a model id is needed, and this says where to look. */
export const NO_MODEL = "<a model from /v1/models>";

/**
 * @typedef {object} Facts
 * @property {string} origin the gateway as the browser reaches it, e.g. "http://127.0.0.1:8000"
 * @property {string | null} model a model the gateway serves now, or null with none
 * @property {boolean} keyNeeded whether clients must send one of the gateway's keys
 */

/**
 * The model to put in the snippets: the first the gateway serves (the order of /v1/models, whose
 * accounts' own models come before the aliases), else the placeholder.
 * @param {{ id: string }[] | undefined} served
 * @returns {string | null}
 */
export function firstModel(served) {
  return served && served.length ? served[0].id : null;
}

/**
 * Every snippet, by the id of the element that shows it.
 *   snippets({ origin: "http://127.0.0.1:8000", model: "deepseek-chat", keyNeeded: false }).curl
 * @param {Facts} facts
 * @returns {Record<"curl" | "python" | "claude-code" | "codex" | "chat-apps", string>}
 */
export function snippets(facts) {
  const base = facts.origin + "/v1";
  const model = facts.model || NO_MODEL;
  // Without keys the gateway takes any key (the SDKs insist on one), so "unused" says so.
  const key = facts.keyNeeded ? KEY_PLACEHOLDER : "unused";
  const json = JSON.stringify({ model, messages: [{ role: "user", content: "Hello" }] });
  return {
    curl: [
      "curl " + base + "/chat/completions",
      "  -H 'content-type: application/json'",
      ...(facts.keyNeeded ? ["  -H 'authorization: Bearer " + KEY_PLACEHOLDER + "'"] : []),
      "  -d '" + json + "'",
    ].join(" \\\n"),
    python: [
      "from openai import OpenAI",
      "",
      "client = OpenAI(base_url=" + JSON.stringify(base) + ", api_key=" + JSON.stringify(key) + ")",
      "reply = client.chat.completions.create(",
      "    model=" + JSON.stringify(model) + ",",
      "    messages=[{\"role\": \"user\", \"content\": \"Hello\"}],",
      ")",
      "print(reply.choices[0].message.content)",
    ].join("\n"),
    // Claude Code adds /v1/messages itself; it asks for Claude names unless told a model.
    "claude-code": [
      "export ANTHROPIC_BASE_URL=" + facts.origin,
      "export ANTHROPIC_AUTH_TOKEN=" + shellWord(key),
      "export ANTHROPIC_MODEL=" + shellWord(model),
      "export ANTHROPIC_SMALL_FAST_MODEL=" + shellWord(model),
      "claude",
    ].join("\n"),
    codex: [
      "# ~/.codex/config.toml, and before codex runs:",
      "# export IFLOW2API_KEY=" + shellWord(key),
      "model = " + JSON.stringify(model),
      "model_provider = \"iflow2api\"",
      "",
      "[model_providers.iflow2api]",
      "name = \"iflow2api\"",
      "base_url = " + JSON.stringify(base),
      "wire_api = \"responses\"",
      "env_key = \"IFLOW2API_KEY\"",
    ].join("\n"),
    // Open WebUI and LobeChat take the base URL with /v1; NextChat adds /v1 itself.
    "chat-apps": [
      "Open WebUI, LobeChat base URL: " + base,
      "NextChat endpoint: " + facts.origin,
      "API key: " + key,
      "Model: " + model,
    ].join("\n"),
  };
}

/**
 * `text` as one word of a POSIX shell: quoted when it holds anything but plain characters (the
 * placeholders hold spaces and angle brackets).
 * @param {string} text
 */
function shellWord(text) {
  return /^[A-Za-z0-9._:\/@+-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
}
