// The gateway's dashboard: sign-in, the sections (overview, accounts, client keys, usage) and keeping them
// fresh, with its own small SVG charts. One file in sections, each section a namespace (Overview,
// Accounts, Keys, Usage) over shared helpers; the gateway serves exactly app.js and style.css.
//
// Stable selectors (tests drive the page through these; keep them when restyling):
//   header     #version  #badge (iFlow login: "logged in" | "not logged in" | "log in again")  #signout
//              #tabs a[data-view=overview|accounts|keys|usage]  (aria-current="page" on the open one)
//              #page-message (the gateway did not answer)
//   sign-in    #signin  #signin-form  input[name=signin-kind][value=key|password]  #signin-secret
//              #signin-message
//   sections   #view-overview  #view-accounts  #view-keys  #view-usage  (hidden unless open; the
//              address is /#accounts, /#keys, /#usage; the overview is plain /)
//   overview   #account (dl)  #login-message  #login  #logout  #code-flow (details)  #code-start
//              #code-step  #code-link  #code-form  #code-input  #base-url  #curl  #python
//              #models (table)  #aliases-block  #aliases
//   accounts   #accounts-policy [data-testid=strategy] [data-testid=affinity]  #accounts-message
//              #accounts-table tbody tr[data-id][data-state][data-source]
//                [data-testid=account-state] (.state-<state>)  [data-testid=countdown][data-until]
//                [data-testid=account-reason]  button[data-action=enable|disable|reset|remove|login]
//              #account-form  #account-kind  #account-label  #account-base-url  #account-key
//              #account-models  #account-concurrency  #account-add-login  #account-code-flow
//   keys       #keys-hint  #keys-message  #keys-table tbody tr[data-id]  button[data-action=revoke]
//              #newkey-form  #newkey-name  #newkey-admin  #newkey-rpm  #newkey-tpd  #newkey-models
//              #newkey-dialog  #newkey-for  #newkey-value [data-testid=new-key]  #newkey-copy  #newkey-close
//   usage      #usage-range button[data-days=1|7|30][aria-pressed]  #usage-csv  #usage-message
//              #usage-totals [data-stat=requests|tokens|error-rate|latency|ttft] .value .sub
//              #usage-empty  #usage-charts  #chart-requests  #chart-tokens  #chart-models  #chart-keys
//              #chart-accounts  #chart-latency  #chart-dialects (each a figure holding one svg[role=img]
//              with <title>; one g.bar per bar, its <title> saying the bar's numbers)  #usage-recent
//   confirm    #confirm (dialog)  #confirm-text  #confirm-ok  #confirm-cancel

// ======== elements ================================================================================
// Building the page's elements. Text from the API (model names, key names, labels, error messages) comes
// from clients and upstreams, so it only ever reaches the page as textContent, never as markup.

const $ = (id) => document.getElementById(id);

/**
 * An element with attributes and children; strings become text nodes.
 *   el("td", { class: "num" }, "42")  ->  <td class="num">42</td>
 */
function el(tag, attributes = {}, ...children) {
  return fill(document.createElement(tag), attributes, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element; same rules as el(). */
function svg(tag, attributes = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attributes, children);
}

/** Attributes (null, undefined and false left out) and children (strings as text) of a new node. */
function fill(node, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Show a message box, or hide it when the message is empty. */
function say(box, message, kind = "") {
  box.textContent = message || "";
  box.className = "message" + (kind ? " " + kind : "");
  box.hidden = !message;
}

/** A table row that spans every column, for "nothing here yet" and errors. */
function placeholderRow(table, text) {
  const columns = table.querySelectorAll("thead th").length || 1;
  return el("tr", { class: "placeholder" }, el("td", { colspan: columns, class: "muted" }, text));
}

/** Name every cell after its column (data-label), so a phone can show rows as labelled cards. */
function labelCells(table) {
  const names = [...table.querySelectorAll("thead th")].map((th) => (th.querySelector(".visually-hidden") ? "" : th.textContent));
  for (const row of table.querySelectorAll("tbody tr:not(.placeholder)")) {
    [...row.children].forEach((cell, i) => { if (names[i]) cell.dataset.label = names[i]; });
  }
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
function confirmAction(text, confirmLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

/** Copy text and say so on the button for a moment. */
async function copyText(button, text) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (_) {
    button.textContent = "Select and copy";
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}

/** "a, b ,, c" -> ["a", "b", "c"] */
function splitList(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean);
}

/** A whole number from an <input type=number>, or null when empty. */
function optionalInt(input) {
  const text = input.value.trim();
  return text === "" ? null : Number.parseInt(text, 10);
}

// ======== formats =================================================================================
// How numbers, durations and times read on the page.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

/** 1234567 -> "1,234,567" (in the reader's locale) */
function count(value) {
  return integer.format(value || 0);
}

/** 1234567 -> "1.2M"; small numbers stay whole. */
function short(value) {
  return Math.abs(value || 0) < 10000 ? count(value) : compact.format(value);
}

/** 0.0213 -> "2.1%" */
function percent(ratio) {
  if (ratio === null || ratio === undefined) return "–";
  const value = ratio * 100;
  return (value > 0 && value < 0.1 ? "<0.1" : value.toFixed(value >= 10 || value === 0 ? 0 : 1)) + "%";
}

/** 850 -> "850 ms", 1830 -> "1.83 s" */
function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1000) return Math.round(value) + " ms";
  if (value < 10000) return (value / 1000).toFixed(2) + " s";
  return (value / 1000).toFixed(1) + " s";
}

/** Seconds left as a clock: 65 -> "1:05", 3725 -> "1:02:05" */
function clock(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
}

/** An epoch time with how far away it is: "5/3/2025, 14:03 (in 6.5 h)" */
function when(epochSeconds) {
  if (!epochSeconds) return "unknown";
  const date = new Date(epochSeconds * 1000);
  const hours = (epochSeconds * 1000 - Date.now()) / 3600000;
  const left = hours <= 0 ? "expired" : hours < 48 ? "in " + hours.toFixed(1) + " h" : "in " + (hours / 24).toFixed(1) + " days";
  return date.toLocaleString() + " (" + left + ")";
}

/** An epoch time as a short local date ("3 May 2025"). */
function dateOf(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

/** A request time: the clock for today, date and clock before. */
function stamp(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (date.toDateString() === new Date().toDateString()) return time;
  return date.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + time;
}

// ======== the management API ======================================================================
// Talking to the gateway's management API: same origin, the session cookie, JSON both ways.

/** A refused call, carrying the gateway's error code ("admin_required", "invalid_request_error"...). */
class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const apiListeners = { adminRequired: () => {} };

/** Called whenever the gateway answers 401 admin_required: the session is gone or never was. */
function onAdminRequired(callback) {
  apiListeners.adminRequired = callback;
}

/**
 * GET when no body is given, POST with a JSON body otherwise.
 *   await api("/api/keys")
 *   await api("/api/keys/revoke", { id: "key-1" })
 */
async function api(path, body) {
  const options = { credentials: "same-origin", headers: { accept: "application/json" } };
  if (body !== undefined) {
    // The gateway only takes JSON here: a cross-site form cannot send this content type without a
    // preflight, which it never grants.
    options.method = "POST";
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    const failure = new ApiError(response.status, error.message || "HTTP " + response.status, error.code || null);
    if (response.status === 401 && failure.code === "admin_required") apiListeners.adminRequired(failure);
    throw failure;
  }
  return payload;
}

/**
 * A loader for one section's table: fetches `path` and calls `render(data)` only when the data changed,
 * so a button is never swapped out from under a click. A failed load goes to `fail`; the message box
 * (`message`) is cleared by the next load that works.
 */
function tableLoader(path, render, message, fail) {
  let shown = "";
  let loadFailed = false;
  return async function load() {
    try {
      const data = await api(path);
      if (loadFailed) message("", "");
      loadFailed = false;
      const fingerprint = JSON.stringify(data);
      if (fingerprint !== shown) {
        shown = fingerprint;
        render(data);
      }
    } catch (error) {
      shown = "";
      loadFailed = true;
      fail(error);
    }
  };
}

/** Whether the page already switched to the sign-in view for this failure (no message needed). */
function handledElsewhere(error) {
  return error instanceof ApiError && error.code === "admin_required";
}

// ======== charts ==================================================================================
// Small SVG charts drawn at the width they are shown at (so their text stays readable on a phone):
// stacked columns over days, and horizontal bars over names. Each bar is a <g class="bar"> whose
// <title> says its numbers (a tooltip on hover); the <svg> has a <title> and a <desc> for screen readers.
// Colours come from CSS classes (.s-ok, .s-err, ...), so dark mode restyles them.

const FALLBACK_WIDTH = 560;
/** Rough width of one character of the 12px chart text, for laying out and shortening names. */
const CHAR_WIDTH = 7;

/**
 * A rounded axis: the top value and the step between gridlines, for counts.
 *   niceScale(87, 4)  ->  { top: 100, step: 25 }   niceScale(0, 4)  ->  { top: 4, step: 1 }
 */
function niceScale(max, ticks) {
  if (!(max > 0)) return { top: ticks, step: 1 };
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normal = raw / magnitude;
  const step = Math.max(1, (normal <= 1 ? 1 : normal <= 2 ? 2 : (normal <= 2.5 && magnitude >= 10) ? 2.5 : normal <= 5 ? 5 : 10) * magnitude);
  return { top: Math.ceil(max / step) * step, step };
}

/** Shorten a name to fit `chars` characters, with an ellipsis. */
function fit(name, chars) {
  return name.length <= chars ? name : name.slice(0, Math.max(1, chars - 1)) + "…";
}

function chartFrame(figure, spec) {
  const heading = el("figcaption", {}, el("h2", {}, spec.title));
  if (spec.note) heading.append(el("p", { class: "muted small" }, spec.note));
  const box = el("div", { class: "chart-box" });
  figure.replaceChildren(heading, box);
  if (spec.legend) {
    figure.append(el("ul", { class: "legend" }, ...spec.legend.map(([name, className]) =>
      el("li", {}, el("span", { class: "swatch " + className, "aria-hidden": "true" }), name))));
  }
  return box;
}

function chartCanvas(box, id, spec, width, height) {
  const titleId = id + "-title";
  const descId = id + "-desc";
  return svg("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": spec.title, "aria-labelledby": titleId, "aria-describedby": descId, class: "chart-svg",
  }, svg("title", { id: titleId }, spec.title), svg("desc", { id: descId }, spec.summary || ""));
}

/**
 * Stacked columns, one per label (a day), bottom-up in the order of `series`.
 * spec: { title, summary, note?, labels: [str], tickLabel(label), series: [{ name, className, values }],
 *         barTitle(index), yTitle, xTitle, legend: [[name, className]] }
 */
function columnChart(figure, id, spec) {
  const box = chartFrame(figure, spec);
  const width = box.clientWidth || FALLBACK_WIDTH;
  const height = 240;
  const margin = { top: 12, right: 8, bottom: 44, left: 58 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const n = spec.labels.length;
  const totals = spec.labels.map((_, i) => spec.series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const { top, step } = niceScale(Math.max(0, ...totals), 4);
  const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
  const chart = chartCanvas(box, id, spec, width, height);

  const grid = svg("g", { class: "axis y" });
  for (let value = 0; value <= top + step / 2; value += step) {
    grid.append(
      svg("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: y(value), y2: y(value) }),
      svg("text", { x: margin.left - 6, y: y(value) + 4, "text-anchor": "end" }, short(value)),
    );
  }
  grid.append(svg("text", {
    class: "axis-title", transform: `translate(12 ${margin.top + plotHeight / 2}) rotate(-90)`, "text-anchor": "middle",
  }, spec.yTitle));
  chart.append(grid);

  const band = plotWidth / Math.max(1, n);
  const barWidth = Math.max(2, Math.min(band * 0.7, 56));
  const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotWidth / 48))));
  const bars = svg("g", { class: "bars" });
  const ticks = svg("g", { class: "axis x" });
  spec.labels.forEach((label, i) => {
    const x = margin.left + i * band + (band - barWidth) / 2;
    const bar = svg("g", { class: "bar", "data-label": label }, svg("title", {}, spec.barTitle(i)));
    // A transparent column so the tooltip shows anywhere above the day, even on an empty day.
    bar.append(svg("rect", { class: "hit", x: margin.left + i * band, y: margin.top, width: band, height: plotHeight }));
    let base = 0;
    for (const series of spec.series) {
      const value = series.values[i] || 0;
      if (value <= 0) continue;
      const h = Math.max(1, (value / top) * plotHeight);
      bar.append(svg("rect", { class: "segment " + series.className, x, y: y(base) - h, width: barWidth, height: h }));
      base += value;
    }
    bars.append(bar);
    // The newest day always gets its label; older ones as room allows.
    if ((n - 1 - i) % every === 0) {
      ticks.append(svg("text", { x: margin.left + i * band + band / 2, y: margin.top + plotHeight + 16, "text-anchor": "middle" },
        spec.tickLabel(label)));
    }
  });
  ticks.append(
    svg("line", { class: "baseline", x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0) }),
    svg("text", { class: "axis-title", x: margin.left + plotWidth / 2, y: height - 6, "text-anchor": "middle" }, spec.xTitle),
  );
  chart.append(bars, ticks);
  box.append(chart);
}

/**
 * Horizontal bars, one per row, each stacked from its segments; the name above the bar on the left,
 * its numbers on the right.
 * spec: { title, summary, note?, rows: [{ name, segments: [{ value, className }], valueText, barTitle }],
 *         legend?: [[name, className]], emptyText }
 */
function barChart(figure, id, spec) {
  const box = chartFrame(figure, spec);
  if (!spec.rows.length) {
    box.append(el("p", { class: "muted empty-chart" }, spec.emptyText || "Nothing yet."));
    return;
  }
  const width = box.clientWidth || FALLBACK_WIDTH;
  const rowHeight = 38;
  const height = spec.rows.length * rowHeight + 4;
  const chart = chartCanvas(box, id, spec, width, height);
  const max = Math.max(1, ...spec.rows.map((row) => row.segments.reduce((sum, s) => sum + s.value, 0)));
  spec.rows.forEach((row, i) => {
    const top = 2 + i * rowHeight;
    const nameRoom = Math.floor((width - row.valueText.length * CHAR_WIDTH - 16) / CHAR_WIDTH);
    const bar = svg("g", { class: "bar", "data-name": row.name }, svg("title", {}, row.barTitle));
    bar.append(
      svg("text", { class: "label", x: 0, y: top + 13 }, fit(row.name, Math.max(4, nameRoom))),
      svg("text", { class: "value", x: width, y: top + 13, "text-anchor": "end" }, row.valueText),
      svg("rect", { class: "track", x: 0, y: top + 19, width, height: 11, rx: 3 }),
    );
    let x = 0;
    for (const segment of row.segments) {
      if (segment.value <= 0) continue;
      const w = Math.max(1, (segment.value / max) * width);
      bar.append(svg("rect", { class: "segment " + segment.className, x, y: top + 19, width: w, height: 11 }));
      x += w;
    }
    chart.append(bar);
  });
  box.append(chart);
}

// ======== overview ================================================================================
// The overview: the iFlow login (by redirect or by pasted code), how to connect, and the models.
const Overview = (() => {
  /** Where the page goes back to after iFlow sends the browser home (sessionStorage; not a secret). */
  const RETURN_VIEW = "iflow2api-login-from";

  let pendingState = null;

  function row(list, name, value) {
    list.append(el("dt", {}, name), el("dd", {}, value));
  }

  function showLoginMessage(message, isError) {
    say($("login-message"), message, isError ? "error" : "");
  }

  /** The header badge: the iFlow login's state. */
  function renderBadge(status) {
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

  function renderOverview(status) {
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
    const body = table.querySelector("tbody");
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
    $("aliases").querySelector("tbody").replaceChildren(
      ...aliases.map(([asked, served]) => el("tr", {}, el("td", {}, asked), el("td", {}, served))));
  }

  /** Only web addresses may become links or navigations (never javascript: and friends). */
  function webAddress(url) {
    if (!/^https?:\/\//i.test(String(url))) throw new Error("The gateway gave an unexpected login address.");
    return url;
  }

  /** Send the browser to iFlow's login page; iFlow sends it back to /?login=ok|error. */
  async function startBrowserLogin(fromView) {
    const started = await api("/api/login", { mode: "browser" });
    const url = webAddress(started.url);
    if (fromView && fromView !== "overview") sessionStorage.setItem(RETURN_VIEW, fromView);
    else sessionStorage.removeItem(RETURN_VIEW);
    location.assign(url);
  }

  function wireOverview(refreshStatus) {
    const fail = (error) => { if (!handledElsewhere(error)) showLoginMessage(error.message, true); };

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
        $("code-link").href = webAddress(started.url);
        pendingState = started.state;
        $("code-step").hidden = false;
      } catch (error) { fail(error); }
    });

    $("code-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const done = await api("/api/login/code", { text: $("code-input").value, state: pendingState });
        $("code-step").hidden = true;
        $("code-input").value = "";
        showLoginMessage("Logged in" + (done.account ? " as " + done.account : "") + ".", false);
        await refreshStatus();
      } catch (error) { fail(error); }
    });

    for (const button of document.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => copyText(button, $(button.dataset.copy).textContent));
    }
  }

  return { RETURN_VIEW, renderBadge, render: renderOverview, showLoginMessage, startBrowserLogin, wire: wireOverview };
})();

// ======== accounts ================================================================================
// The accounts section: the pool's upstream accounts, their state, and adding or managing them.
const Accounts = (() => {
  const KINDS = { "iflow-oauth": "iFlow login", "iflow-key": "iFlow API key", "openai-compatible": "OpenAI-compatible" };
  const SOURCES = {
    "iflow-cli": ["~/.iflow", "The iFlow CLI's own login; log out on the overview to drop it."],
    config: ["config file", "Set in the gateway's configuration; change it there."],
    store: ["added here", "Added on this page or with the CLI."],
  };
  const STRATEGIES = {
    "round-robin": "round-robin (requests take turns across the accounts)",
    "fill-first": "fill-first (the first account until it is busy or cooling, then the next)",
  };

  function message(text, kind) {
    say($("accounts-message"), text, kind);
  }

  function fail(error) {
    if (!handledElsewhere(error)) message(error.message, "error");
  }

  /** The countdown text for a cooldown ending at `until` (epoch seconds). */
  function countdownText(until) {
    const left = until - Date.now() / 1000;
    return left > 0 ? clock(left) + " left" : "ending…";
  }

  /** Called every second: cooldowns count down without asking the gateway. */
  function tickAccounts() {
    for (const node of document.querySelectorAll("#accounts-table [data-until]")) {
      node.textContent = countdownText(Number(node.dataset.until));
    }
  }

  function modelsCell(account) {
    const models = account.models || [];
    if (account.kind !== "openai-compatible") return el("td", { class: "muted" }, "all iFlow models");
    if (!models.length) return el("td", { class: "muted" }, "from its /models");
    const more = models.length > 3 ? " +" + (models.length - 3) + " more" : "";
    return el("td", { title: models.join(", ") }, models.slice(0, 3).join(", ") + more);
  }

  function stateCell(account) {
    const badge = el("span", { class: "state state-" + account.state, "data-testid": "account-state" }, account.state);
    const cell = el("td", {}, badge);
    if (account.state === "cooling" && account.until) {
      cell.append(" ", el("span", {
        class: "countdown", "data-testid": "countdown", "data-until": account.until,
        title: "until " + new Date(account.until * 1000).toLocaleTimeString(),
      }, countdownText(account.until)));
    }
    if (account.state === "needs-login") {
      cell.append(el("div", { class: "muted small" }, "iFlow refused its login: log in again."));
    }
    if (account.reason && account.state !== "ok") {
      cell.append(el("div", { class: "muted small reason", "data-testid": "account-reason" }, account.reason));
    }
    return cell;
  }

  function actionButton(account, action, label, className = "") {
    return el("button", {
      type: "button", class: "small " + className, "data-action": action, "data-id": account.id,
      "aria-label": label + " " + account.label,
    }, label);
  }

  function actionsCell(account) {
    const buttons = [];
    if (account.enabled) buttons.push(actionButton(account, "disable", "Disable"));
    else buttons.push(actionButton(account, "enable", "Enable"));
    if (account.state === "cooling" || account.state === "quarantined") buttons.push(actionButton(account, "reset", "Reset"));
    if (account.state === "needs-login" && account.kind === "iflow-oauth") buttons.push(actionButton(account, "login", "Log in"));
    // Accounts from the config file or the iFlow CLI's own login are not the page's to remove.
    if (account.source === "store") buttons.push(actionButton(account, "remove", "Remove", "danger"));
    return el("td", { class: "row-actions" }, ...buttons);
  }

  function accountRow(account) {
    const [source, sourceHelp] = SOURCES[account.source] || [account.source, ""];
    const errorRate = account.requests ? account.errors / account.requests : 0;
    return el("tr", { "data-id": account.id, "data-state": account.state, "data-source": account.source },
      el("td", {}, el("div", { class: "strong" }, account.label), el("div", { class: "muted small" }, account.id)),
      el("td", {}, el("span", { class: "nowrap" }, KINDS[account.kind] || account.kind),
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

  function render(data) {
    const policy = $("accounts-policy");
    policy.replaceChildren(
      "Strategy: ", el("strong", { "data-testid": "strategy" }, STRATEGIES[data.strategy] ? data.strategy : String(data.strategy)),
      " · Affinity: ", el("strong", { "data-testid": "affinity" }, data.affinity ? "on" : "off"));
    policy.title = (STRATEGIES[data.strategy] || "") +
      (data.affinity ? "; a conversation stays on the account that served it" : "");
    const table = $("accounts-table");
    const body = table.querySelector("tbody");
    body.replaceChildren(...data.accounts.map(accountRow));
    if (!data.accounts.length) {
      body.append(placeholderRow(table, "No accounts yet: log in with iFlow, or add a key below."));
    }
    labelCells(table);
  }

  const loadAccounts = tableLoader("/api/accounts", render, message, fail);

  async function act(id, action, label) {
    if (action === "login") {
      await Overview.startBrowserLogin("accounts").catch(fail);
      return;
    }
    if (action === "remove") {
      const sure = await confirmAction(
        `Remove the account “${label}”? The gateway stops using it and forgets its key.`, "Remove");
      if (!sure) return;
    }
    try {
      await api("/api/accounts/action", { id, action });
      const done = { enable: "Enabled", disable: "Disabled", reset: "Reset", remove: "Removed" }[action];
      message(`${done} ${label}.`, "");
      await loadAccounts();
    } catch (error) { fail(error); }
  }

  function syncKindFields() {
    const openai = $("account-kind").value === "openai-compatible";
    $("account-base-url-row").hidden = !openai;
    $("account-models-row").hidden = !openai;
    $("account-base-url").required = openai;
  }

  async function addAccount(event) {
    event.preventDefault();
    const kind = $("account-kind").value;
    const body = { kind, label: $("account-label").value.trim(), api_key: $("account-key").value.trim() };
    if (kind === "openai-compatible") {
      body.base_url = $("account-base-url").value.trim();
      body.models = splitList($("account-models").value);
    }
    body.concurrency = optionalInt($("account-concurrency"));
    try {
      const created = await api("/api/accounts", body);
      $("account-form").reset();
      syncKindFields();
      message(`Added ${(created && created.account && created.account.label) || body.label}.`, "");
      await loadAccounts();
    } catch (error) { fail(error); }
  }

  function wireAccounts(showView) {
    $("accounts-table").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const row = button.closest("tr");
      act(button.dataset.id, button.dataset.action, row.querySelector(".strong").textContent);
    });
    $("account-kind").addEventListener("change", syncKindFields);
    $("account-form").addEventListener("submit", addAccount);
    $("account-add-login").addEventListener("click", () => Overview.startBrowserLogin("accounts").catch(fail));
    $("account-code-flow").addEventListener("click", (event) => {
      event.preventDefault();
      showView("overview");
      $("code-flow").open = true;
      $("code-flow").scrollIntoView({ behavior: "smooth" });
    });
    syncKindFields();
  }

  return { load: loadAccounts, tick: tickAccounts, wire: wireAccounts };
})();

// ======== client keys =============================================================================
// The client keys section: who may use the gateway, with which limits; a new key is shown once.
const Keys = (() => {
  /** adminRequired(): whether the gateway had keys (and so a sign-in) at the last status;
   *  statusChanged(): ask for the status again. */
  let hooks = { adminRequired: () => true, statusChanged: async () => {} };

  function message(text, kind) {
    say($("keys-message"), text, kind);
  }

  function fail(error) {
    if (!handledElsewhere(error)) message(error.message, "error");
  }

  function limitsText(key) {
    const limits = [];
    if (key.rpm !== null && key.rpm !== undefined) limits.push(count(key.rpm) + " requests/min");
    if (key.tokens_per_day !== null && key.tokens_per_day !== undefined) limits.push(count(key.tokens_per_day) + " tokens/day");
    return limits.length ? limits.join(" · ") : "none";
  }

  function keyRow(key) {
    const tokens = key.tokens_per_day ? count(key.tokens_today) + " / " + count(key.tokens_per_day) : count(key.tokens_today);
    return el("tr", { "data-id": key.id },
      el("td", { class: "strong" }, key.name),
      el("td", {}, el("code", {}, key.prefix)),
      el("td", {}, key.admin ? el("span", { class: "state state-admin" }, "admin") : el("span", { class: "muted" }, "client")),
      el("td", {}, limitsText(key)),
      el("td", key.models.length ? {} : { class: "muted" }, key.models.length ? key.models.join(", ") : "all"),
      el("td", { class: "num" }, count(key.requests_today)),
      el("td", { class: "num" }, tokens),
      el("td", {}, key.created_at ? dateOf(key.created_at) : ""),
      el("td", { class: "row-actions" }, el("button", {
        type: "button", class: "small danger", "data-action": "revoke", "data-id": key.id, "aria-label": "Revoke " + key.name,
      }, "Revoke")));
  }

  function render(data) {
    const table = $("keys-table");
    const body = table.querySelector("tbody");
    body.replaceChildren(...data.keys.map(keyRow));
    if (!data.keys.length) body.append(placeholderRow(table, "No client keys yet."));
    labelCells(table);
    $("keys-hint").hidden = data.keys.length > 0;
  }

  const loadKeys = tableLoader("/api/keys", render, message, fail);

  /** The new key, in a modal that only its own button closes; the key leaves the page with it. */
  function showOnce(name, key) {
    $("newkey-for").textContent = name;
    $("newkey-value").textContent = key;
    $("newkey-dialog").showModal();
  }

  async function createKey(event) {
    event.preventDefault();
    const body = {
      name: $("newkey-name").value.trim(),
      admin: $("newkey-admin").checked,
      rpm: optionalInt($("newkey-rpm")),
      tokens_per_day: optionalInt($("newkey-tpd")),
      models: splitList($("newkey-models").value),
    };
    // The first key switches on sign-in for this page: it must not lock out whoever creates it.
    const firstKey = !hooks.adminRequired();
    if (firstKey && !body.admin) {
      const sure = await confirmAction(
        "This is the gateway's first key, and not an admin key. Once it exists, clients must send a key " +
        "and this page asks for an admin key or the admin password. Create it anyway?", "Create");
      if (!sure) return;
    }
    try {
      const created = await api("/api/keys", body);
      $("newkey-form").reset();
      message("", "");
      showOnce((created.record && created.record.name) || body.name, created.key);
      if (firstKey && created.record && created.record.admin) {
        // Sign this page in with the new admin key, so it keeps working once keys are required.
        await api("/api/session", { key: created.key }).catch(() => {});
      }
      if (firstKey) await hooks.statusChanged();
      await loadKeys();
    } catch (error) { fail(error); }
  }

  async function revoke(id, name) {
    const sure = await confirmAction(
      `Revoke the key “${name}”? Clients using it are refused from now on. This cannot be undone.`, "Revoke");
    if (!sure) return;
    try {
      await api("/api/keys/revoke", { id });
      message(`Revoked ${name}.`, "");
      await loadKeys();
    } catch (error) { fail(error); }
  }

  function wireKeys(pageHooks) {
    hooks = pageHooks;
    $("newkey-form").addEventListener("submit", createKey);
    $("keys-table").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action=revoke]");
      if (button) revoke(button.dataset.id, button.closest("tr").querySelector(".strong").textContent);
    });
    const dialog = $("newkey-dialog");
    $("newkey-copy").addEventListener("click", () => copyText($("newkey-copy"), $("newkey-value").textContent));
    // The key leaves the page as the dialog closes, not a task later (when "close" fires).
    const forgetKey = () => {
      $("newkey-value").textContent = "";
      $("newkey-for").textContent = "";
    };
    $("newkey-close").addEventListener("click", () => {
      forgetKey();
      dialog.close();
    });
    // Escape must not lose the key by accident: only the button closes it.
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    dialog.addEventListener("close", forgetKey);
  }

  return { load: loadKeys, wire: wireKeys };
})();

// ======== usage ===================================================================================
// The usage section: totals, charts over days and names, latency, the newest requests, CSV export.
const Usage = (() => {
  /** Rows per name chart; the rest are summed into one "N others" bar. */
  const TOP = 10;

  const view = { days: 7, data: null, shown: "", asked: 0, width: 0 };

  function plural(n, word) {
    return count(n) + " " + word + (n === 1 ? "" : "s");
  }

  function fail(error) {
    if (!handledElsewhere(error)) say($("usage-message"), error.message, "error");
  }

  function setStat(name, value, sub) {
    const stat = document.querySelector(`#usage-totals [data-stat="${name}"]`);
    stat.querySelector(".value").replaceChildren(...(Array.isArray(value) ? value : [value]));
    stat.querySelector(".sub").textContent = sub;
  }

  function renderTotals(data) {
    const t = data.totals;
    // null when no rows (the design), or an object of nulls: either way, nothing to show.
    const lat = data.latency && data.latency.p50_ms !== null && data.latency.p50_ms !== undefined ? data.latency : null;
    const hasTtft = lat && lat.ttft_p50_ms !== null && lat.ttft_p50_ms !== undefined;
    setStat("requests", count(t.requests), plural(t.errors, "error"));
    setStat("tokens", short(t.prompt_tokens + t.completion_tokens),
      `prompt ${short(t.prompt_tokens)} · completion ${short(t.completion_tokens)} · reasoning ${short(t.reasoning_tokens)}`);
    setStat("error-rate", t.requests ? percent(t.error_rate) : "–", t.requests ? `${count(t.errors)} of ${count(t.requests)}` : "");
    setStat("latency", lat ? [ms(lat.p50_ms), el("span", { class: "second" }, " / " + ms(lat.p95_ms))] : "–", lat ? `p90 ${ms(lat.p90_ms)} · p99 ${ms(lat.p99_ms)}` : "");
    setStat("ttft", hasTtft ? ms(lat.ttft_p50_ms) : "–", hasTtft ? `p95 ${ms(lat.ttft_p95_ms)}` : "");
  }

  function rangeText(days) {
    return days === 1 ? "the last 24 hours" : `the last ${days} days`;
  }

  function requestsChart(data) {
    const days = data.per_day;
    const busiest = days.reduce((best, d) => (d.requests > best.requests ? d : best), days[0] || { requests: 0 });
    columnChart($("chart-requests"), "chart-requests-svg", {
      title: "Requests per day",
      summary: `${rangeText(data.days)}: ${plural(data.totals.requests, "request")}, ${plural(data.totals.errors, "error")}` +
        (busiest && busiest.requests ? `; busiest ${busiest.day} with ${count(busiest.requests)}.` : "."),
      labels: days.map((d) => d.day),
      tickLabel: (label) => label.slice(5),
      series: [
        { name: "answered", className: "s-ok", values: days.map((d) => d.requests - d.errors) },
        { name: "errors", className: "s-err", values: days.map((d) => d.errors) },
      ],
      barTitle: (i) => `${days[i].day}: ${plural(days[i].requests, "request")}, ${plural(days[i].errors, "error")}`,
      yTitle: "requests",
      xTitle: "day (UTC)",
      legend: [["answered", "s-ok"], ["errors", "s-err"]],
    });
  }

  function tokensChart(data) {
    const days = data.per_day;
    const t = data.totals;
    columnChart($("chart-tokens"), "chart-tokens-svg", {
      title: "Tokens per day",
      note: "Reasoning is part of the completion; shown apart.",
      summary: `${rangeText(data.days)}: ${count(t.prompt_tokens + t.completion_tokens)} tokens, prompt ${count(t.prompt_tokens)}, ` +
        `completion ${count(t.completion_tokens)} of which reasoning ${count(t.reasoning_tokens)}.`,
      labels: days.map((d) => d.day),
      tickLabel: (label) => label.slice(5),
      series: [
        { name: "prompt", className: "s-prompt", values: days.map((d) => d.prompt_tokens) },
        { name: "completion", className: "s-completion", values: days.map((d) => Math.max(0, d.completion_tokens - d.reasoning_tokens)) },
        { name: "reasoning", className: "s-reasoning", values: days.map((d) => d.reasoning_tokens) },
      ],
      barTitle: (i) => {
        const d = days[i];
        return `${d.day}: ${count(d.prompt_tokens + d.completion_tokens)} tokens (prompt ${count(d.prompt_tokens)}, ` +
          `completion ${count(d.completion_tokens)}, of which reasoning ${count(d.reasoning_tokens)})`;
      },
      yTitle: "tokens",
      xTitle: "day (UTC)",
      legend: [["prompt", "s-prompt"], ["completion", "s-completion"], ["reasoning", "s-reasoning"]],
    });
  }

  /** The first TOP entries, the rest summed into one. */
  function topRows(entries) {
    if (entries.length <= TOP) return entries;
    const rest = entries.slice(TOP - 1);
    const requests = rest.reduce((sum, e) => sum + e.requests, 0);
    const errors = rest.reduce((sum, e) => sum + e.errors, 0);
    return [...entries.slice(0, TOP - 1), {
      name: `${rest.length} others`, requests, errors, error_rate: requests ? errors / requests : 0,
      tokens: rest.reduce((sum, e) => sum + e.tokens, 0), p50_ms: null, p95_ms: null,
    }];
  }

  function namesChart(id, title, what, entries, range) {
    barChart($(id), id + "-svg", {
      title,
      summary: `Requests per ${what} in ${range}, with the share that failed.`,
      rows: topRows(entries).map((e) => ({
        name: e.name,
        segments: [{ value: e.requests - e.errors, className: "s-ok" }, { value: e.errors, className: "s-err" }],
        valueText: `${short(e.requests)} · ${percent(e.error_rate)} errors`,
        barTitle: `${e.name}: ${plural(e.requests, "request")}, ${plural(e.errors, "error")} (${percent(e.error_rate)}), ` +
          `${count(e.tokens)} tokens` + (e.p50_ms === null || e.p50_ms === undefined ? "" : `, p50 ${ms(e.p50_ms)}, p95 ${ms(e.p95_ms)}`),
      })),
      legend: [["answered", "s-ok"], ["errors", "s-err"]],
      emptyText: "No requests in this range.",
    });
  }

  function latencyChart(data) {
    const lat = data.latency;
    const points = lat ? [
      ["p50", lat.p50_ms, "s-latency"], ["p90", lat.p90_ms, "s-latency"], ["p95", lat.p95_ms, "s-latency"],
      ["p99", lat.p99_ms, "s-latency"], ["first token p50", lat.ttft_p50_ms, "s-ttft"],
      ["first token p95", lat.ttft_p95_ms, "s-ttft"],
    ].filter(([, value]) => value !== null && value !== undefined) : [];
    barChart($("chart-latency"), "chart-latency-svg", {
      title: "Latency percentiles",
      note: "Whole request, and time to the first token of a reply.",
      summary: points.map(([name, value]) => `${name} ${ms(value)}`).join(", ") || "No requests yet.",
      rows: points.map(([name, value, className]) => ({
        name, segments: [{ value, className }], valueText: ms(value), barTitle: `${name}: ${ms(value)}`,
      })),
      legend: [["whole request", "s-latency"], ["first token", "s-ttft"]],
      emptyText: "No requests in this range.",
    });
  }

  function renderCharts(data) {
    const range = rangeText(data.days);
    requestsChart(data);
    tokensChart(data);
    namesChart("chart-models", "By model", "model", data.per_model, range);
    namesChart("chart-keys", "By client key", "client key", data.per_key, range);
    namesChart("chart-accounts", "By account", "account", data.per_account, range);
    latencyChart(data);
    namesChart("chart-dialects", "By API dialect", "dialect", data.per_dialect || [], range);
  }

  function recentRow(r) {
    const failed = r.status >= 400;
    // The upstream sent no usage: the counts are the gateway's own estimate.
    const about = r.estimated ? "≈" : "";
    const estimate = r.estimated ? "estimated: the upstream reported no usage" : null;
    return el("tr", { class: failed ? "failed" : "" },
      el("td", { title: new Date(r.at * 1000).toLocaleString() }, stamp(r.at)),
      el("td", {}, r.key === null ? "(no key)" : r.key),
      el("td", {}, r.account === null ? "(none)" : r.account),
      el("td", {}, r.model),
      el("td", {}, r.dialect, r.stream ? el("span", { class: "muted small" }, " stream") : null),
      el("td", {}, el("span", { class: "state " + (failed ? "state-error" : "state-ok") }, r.status)),
      el("td", { class: "num", title: estimate }, about + count(r.prompt_tokens)),
      el("td", { class: "num", title: estimate }, about + count(r.completion_tokens)),
      el("td", { class: "num" }, r.reasoning_tokens ? count(r.reasoning_tokens) : ""),
      el("td", { class: "num" }, ms(r.latency_ms)),
      el("td", { class: "num" }, r.ttft_ms === null ? "" : ms(r.ttft_ms)),
      el("td", { class: "num" }, r.attempts),
      el("td", { class: "muted" }, r.error || ""));
  }

  function render(data) {
    renderTotals(data);
    const empty = !data.totals.requests;
    $("usage-empty").hidden = !empty;
    $("usage-empty-text").textContent = `Nothing went through the gateway in ${rangeText(data.days)}. ` +
      "Point a client at its base URL (see the overview) and the charts fill in here.";
    $("usage-charts").hidden = empty;
    if (empty) return;
    view.width = $("usage-charts").clientWidth;
    renderCharts(data);
    const table = $("usage-recent");
    const body = table.querySelector("tbody");
    body.replaceChildren(...data.recent.map(recentRow));
    if (!data.recent.length) body.append(placeholderRow(table, "No requests yet."));
  }

  async function loadUsage() {
    const asked = ++view.asked;
    const days = view.days;
    try {
      const data = await api("/api/usage?days=" + days);
      if (asked !== view.asked) return; // the range changed while this was on its way
      say($("usage-message"), "", "");
      view.data = data;
      // The time window moves on every call; redraw only when the numbers did.
      const fingerprint = JSON.stringify({ ...data, since: 0, until: 0 });
      if (fingerprint !== view.shown) {
        view.shown = fingerprint;
        render(data);
      }
    } catch (error) {
      if (asked === view.asked) fail(error);
    }
  }

  function choose(days) {
    view.days = days;
    view.shown = "";
    for (const button of $("usage-range").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.days) === days));
    }
    $("usage-csv").href = "/api/usage.csv?days=" + days;
    return loadUsage();
  }

  function wireUsage() {
    $("usage-range").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-days]");
      if (button) choose(Number(button.dataset.days));
    });
    // Charts are drawn at their real width, so redraw them when it changes.
    let pending = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => {
        const width = $("usage-charts").clientWidth;
        if (view.data && view.data.totals.requests && width && width !== view.width) {
          view.width = width;
          renderCharts(view.data);
        }
      });
    }).observe($("usage-charts"));
  }

  return { load: loadUsage, wire: wireUsage };
})();

// ======== the page ================================================================================
const VIEWS = ["overview", "accounts", "keys", "usage"];
const LOADERS = { accounts: Accounts.load, keys: Keys.load, usage: Usage.load };
const REFRESH_MS = 5000;

const page = { view: viewFromAddress(), locked: false, ready: false, adminRequired: false };

function viewFromAddress() {
  const name = location.hash.replace(/^#/, "");
  return VIEWS.includes(name) ? name : "overview";
}

function loadView() {
  const loader = LOADERS[page.view];
  return loader && !page.locked ? loader() : Promise.resolve();
}

/** Open a section; `push` adds it to the history so Back returns to the previous one. */
function showView(name, push = false) {
  page.view = VIEWS.includes(name) ? name : "overview";
  if (push) history.pushState(null, "", page.view === "overview" ? location.pathname : "#" + page.view);
  for (const view of VIEWS) $("view-" + view).hidden = page.locked || !page.ready || view !== page.view;
  for (const tab of $("tabs").querySelectorAll("a[data-view]")) {
    if (tab.dataset.view === page.view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  return loadView();
}

/** Admin sign-in needed: show only the sign-in form. */
function lock() {
  const fresh = $("signin").hidden;
  page.locked = true;
  $("signin").hidden = false;
  if (fresh) $("signin-secret").focus();
  $("tabs").hidden = true;
  $("badge").hidden = true;
  $("signout").hidden = true;
  showView(page.view);
}

function unlock(status) {
  const wasLocked = page.locked || !page.ready;
  page.locked = false;
  page.ready = true;
  $("signin").hidden = true;
  $("tabs").hidden = false;
  page.adminRequired = Boolean(status.admin && status.admin.required);
  $("signout").hidden = !(page.adminRequired && status.admin.signed_in);
  Overview.renderBadge(status);
  Overview.render(status);
  if (wasLocked) showView(page.view);
  return wasLocked;
}

/** Ask for the status and show what it allows; true when that already (re)loaded the open section. */
async function refreshStatus() {
  try {
    const status = await api("/api/status");
    say($("page-message"), "");
    $("version").textContent = "v" + status.version;
    const admin = status.admin || { required: false, signed_in: false };
    if (admin.required && !admin.signed_in) {
      lock();
      return true;
    }
    return unlock(status);
  } catch (error) {
    say($("page-message"), "The gateway did not answer: " + error.message, "error");
    return true;
  }
}

async function poll() {
  if (document.visibilityState !== "visible") return;
  if (!(await refreshStatus())) await loadView();
}

function wireSignIn() {
  const secret = $("signin-secret");
  for (const choice of document.querySelectorAll("input[name=signin-kind]")) {
    choice.addEventListener("change", () => {
      const password = choice.value === "password";
      $("signin-secret-label").textContent = password ? "Admin password" : "Admin key";
      secret.autocomplete = password ? "current-password" : "off";
      secret.focus();
    });
  }
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = document.querySelector("input[name=signin-kind]:checked").value;
    try {
      await api("/api/session", { [kind]: secret.value });
      secret.value = "";
      say($("signin-message"), "");
      await refreshStatus();
    } catch (error) {
      // Always said here, whatever the code: this form is where a refusal must show.
      say($("signin-message"), error.status === 401
        ? (kind === "password" ? "Wrong password." : "That key is not an admin key of this gateway.")
        : error.message, "error");
    }
  });
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

function wireTabs() {
  $("tabs").addEventListener("click", (event) => {
    const tab = event.target.closest("a[data-view]");
    if (!tab || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    showView(tab.dataset.view, true);
  });
  window.addEventListener("popstate", () => showView(viewFromAddress()));
}

/** Back from iFlow's login page: /?login=ok&account=... or /?login=error&message=... */
function takeLoginResult() {
  const params = new URLSearchParams(location.search);
  if (!params.has("login")) return;
  const ok = params.get("login") === "ok";
  const text = ok
    ? "Logged in" + (params.get("account") ? " as " + params.get("account") : "") + "."
    : "Login failed: " + (params.get("message") || "unknown error");
  Overview.showLoginMessage(text, !ok);
  const from = sessionStorage.getItem(Overview.RETURN_VIEW);
  sessionStorage.removeItem(Overview.RETURN_VIEW);
  if (from === "accounts") {
    page.view = "accounts";
    say($("accounts-message"), text, ok ? "" : "error");
  }
  history.replaceState(null, "", page.view === "overview" ? "/" : "/#" + page.view);
}

onAdminRequired(lock);
wireSignIn();
wireTabs();
Overview.wire(refreshStatus);
Accounts.wire((name) => showView(name, true));
Keys.wire({ adminRequired: () => page.adminRequired, statusChanged: refreshStatus });
Usage.wire();
takeLoginResult();
refreshStatus();
setInterval(poll, REFRESH_MS);
setInterval(() => { if (page.view === "accounts" && !page.locked) Accounts.tick(); }, 1000);
document.addEventListener("visibilitychange", poll);
