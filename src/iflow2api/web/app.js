// The gateway's page: shows the login state, runs the iFlow login, and shows how to connect.
"use strict";

const $ = (id) => document.getElementById(id);
let pendingState = null;

function gatewayKey() {
  return sessionStorage.getItem("iflow2api-key") || "";
}

async function api(path, options = {}) {
  const headers = { "content-type": "application/json", ...(options.headers || {}) };
  const key = gatewayKey();
  if (key) headers.authorization = "Bearer " + key;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401 && body && body.error && body.error.code === "invalid_api_key") {
    $("key-form").hidden = false;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : "HTTP " + response.status;
    throw new Error(message);
  }
  return body;
}

function show(message, isError) {
  const box = $("login-message");
  box.textContent = message;
  box.className = "message" + (isError ? " error" : "");
  box.hidden = !message;
}

function when(epochSeconds) {
  if (!epochSeconds) return "unknown";
  const date = new Date(epochSeconds * 1000);
  const hours = (epochSeconds * 1000 - Date.now()) / 3600000;
  const left = hours <= 0 ? "expired" : hours < 48 ? "in " + hours.toFixed(1) + " h" : "in " + (hours / 24).toFixed(1) + " days";
  return date.toLocaleString() + " (" + left + ")";
}

function row(list, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

function render(status) {
  $("version").textContent = "v" + status.version;
  const badge = $("badge");
  const login = status.login;
  if (!status.logged_in) {
    badge.textContent = "not logged in"; badge.className = "badge bad";
  } else if (login.state === "needs-login") {
    badge.textContent = "log in again"; badge.className = "badge warn";
  } else {
    badge.textContent = "logged in"; badge.className = "badge ok";
  }
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
  $("base-url").textContent = base;
  const model = (status.models[0] && status.models[0].id) || "glm-4.7";
  $("curl").textContent =
    "curl " + base + "/chat/completions \\\n  -H 'content-type: application/json' \\\n" +
    "  -d '{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'";
  $("python").textContent =
    "from openai import OpenAI\n\nclient = OpenAI(base_url=\"" + base + "\", api_key=\"" +
    (status.needs_client_key ? "<a client key of this gateway>" : "unused") + "\")\n" +
    "reply = client.chat.completions.create(\n    model=\"" + model + "\",\n" +
    "    messages=[{\"role\": \"user\", \"content\": \"Hello\"}],\n)\nprint(reply.choices[0].message.content)";

  const body = $("models").querySelector("tbody");
  body.replaceChildren();
  if (!status.models.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 4;
    td.className = "muted";
    td.textContent = status.logged_in ? "This upstream lists its models at /v1/models." : "The models appear once you are logged in.";
    tr.append(td);
    body.append(tr);
  }
  for (const m of status.models) {
    const tr = document.createElement("tr");
    for (const value of [m.id, m.name || "", m.context_length ? m.context_length.toLocaleString() : "", m.max_output_tokens ? m.max_output_tokens.toLocaleString() : ""]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    body.append(tr);
  }
}

async function refresh() {
  try {
    render(await api("/api/status"));
  } catch (error) {
    show(error.message, true);
  }
}

$("login").addEventListener("click", async () => {
  try {
    const started = await api("/api/login", { method: "POST", body: JSON.stringify({ mode: "browser" }) });
    location.assign(started.url);
  } catch (error) { show(error.message, true); }
});

$("logout").addEventListener("click", async () => {
  try {
    await api("/api/logout", { method: "POST", body: "{}" });
    show("Logged out.", false);
    await refresh();
  } catch (error) { show(error.message, true); }
});

$("code-start").addEventListener("click", async () => {
  try {
    const started = await api("/api/login", { method: "POST", body: JSON.stringify({ mode: "code" }) });
    pendingState = started.state;
    $("code-link").href = started.url;
    $("code-step").hidden = false;
  } catch (error) { show(error.message, true); }
});

$("code-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const done = await api("/api/login/code", {
      method: "POST",
      body: JSON.stringify({ text: $("code-input").value, state: pendingState }),
    });
    $("code-step").hidden = true;
    $("code-input").value = "";
    show("Logged in" + (done.account ? " as " + done.account : "") + ".", false);
    await refresh();
  } catch (error) { show(error.message, true); }
});

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("iflow2api-key", $("key-input").value);
  $("key-form").hidden = true;
  refresh();
});

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText($(button.dataset.copy).textContent);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
}

const params = new URLSearchParams(location.search);
if (params.get("login") === "ok") show("Logged in" + (params.get("account") ? " as " + params.get("account") : "") + ".", false);
if (params.get("login") === "error") show("Login failed: " + (params.get("message") || "unknown error"), true);
if (params.has("login")) history.replaceState(null, "", "/");

refresh();
setInterval(refresh, 5000);
