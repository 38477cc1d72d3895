// @ts-check
// The usage section: totals, charts over days and names, latency, the newest requests, CSV export.

import { api, asError, handledElsewhere } from "./api.js";
import { barChart, columnChart } from "./charts.js";
import { $, closest, el, find, placeholderRow, say, tableBody } from "./dom.js";
import { count, ms, percent, short, stamp } from "./format.js";

/**
 * What /api/usage?days=N says (usage/stats.py).
 * @typedef {object} UsageDocument
 * @property {number} days
 * @property {number} since
 * @property {number} until
 * @property {Totals} totals
 * @property {Latency | null} latency null when there are no rows
 * @property {Day[]} per_day
 * @property {Entry[]} per_model
 * @property {Entry[]} per_key
 * @property {Entry[]} per_account
 * @property {Entry[]} [per_dialect]
 * @property {Recent[]} recent
 */

/**
 * @typedef {object} Totals
 * @property {number} requests
 * @property {number} errors
 * @property {number | null} error_rate
 * @property {number} prompt_tokens
 * @property {number} completion_tokens
 * @property {number} reasoning_tokens
 * @property {number} [cached_tokens] prompt tokens the upstream read from its cache (part of prompt_tokens)
 */

/**
 * @typedef {object} Latency
 * @property {number | null} p50_ms
 * @property {number | null} p90_ms
 * @property {number | null} p95_ms
 * @property {number | null} p99_ms
 * @property {number | null} [ttft_p50_ms]
 * @property {number | null} [ttft_p95_ms]
 */

/** @typedef {{ day: string, requests: number, errors: number, prompt_tokens: number, completion_tokens: number, reasoning_tokens: number, cached_tokens?: number }} Day */

/** @typedef {{ name: string, requests: number, errors: number, error_rate: number | null, tokens: number, p50_ms: number | null, p95_ms: number | null }} Entry */

/**
 * One of the newest requests.
 * @typedef {object} Recent
 * @property {number} at
 * @property {string | null} key
 * @property {string | null} account
 * @property {string} model
 * @property {string} dialect
 * @property {boolean} stream
 * @property {number} status
 * @property {boolean} estimated
 * @property {number} prompt_tokens
 * @property {number} completion_tokens
 * @property {number} reasoning_tokens
 * @property {number} [cached_tokens]
 * @property {number} latency_ms
 * @property {number | null} ttft_ms
 * @property {number} attempts
 * @property {string | null} error
 */

/** Rows per name chart; the rest are summed into one "N others" bar. */
const TOP = 10;

/** @type {{ days: number, data: UsageDocument | null, shown: string, asked: number, width: number }} */
const view = { days: 7, data: null, shown: "", asked: 0, width: 0 };

/**
 * @param {number} n
 * @param {string} word
 */
function plural(n, word) {
  return count(n) + " " + word + (n === 1 ? "" : "s");
}

/** @param {unknown} error */
function fail(error) {
  if (!handledElsewhere(error)) say($("usage-message"), asError(error).message, "error");
}

/**
 * @param {string} name
 * @param {string | (string | Node)[]} value
 * @param {string} sub
 */
function setStat(name, value, sub) {
  const stat = find(document, `#usage-totals [data-stat="${name}"]`);
  find(stat, ".value").replaceChildren(...(Array.isArray(value) ? value : [value]));
  find(stat, ".sub").textContent = sub;
}

/** @param {UsageDocument} data */
function renderTotals(data) {
  const t = data.totals;
  // null when no rows (the design), or an object of nulls: either way, nothing to show.
  const lat = data.latency && data.latency.p50_ms !== null && data.latency.p50_ms !== undefined ? data.latency : null;
  const hasTtft = lat && lat.ttft_p50_ms !== null && lat.ttft_p50_ms !== undefined;
  setStat("requests", count(t.requests), plural(t.errors, "error"));
  const cached = t.cached_tokens ? ` (cached ${short(t.cached_tokens)})` : "";
  setStat("tokens", short(t.prompt_tokens + t.completion_tokens),
    `prompt ${short(t.prompt_tokens)}${cached} · completion ${short(t.completion_tokens)} · reasoning ${short(t.reasoning_tokens)}`);
  setStat("error-rate", t.requests ? percent(t.error_rate) : "–", t.requests ? `${count(t.errors)} of ${count(t.requests)}` : "");
  setStat("latency", lat ? [ms(lat.p50_ms), el("span", { class: "second" }, " / " + ms(lat.p95_ms))] : "–", lat ? `p90 ${ms(lat.p90_ms)} · p99 ${ms(lat.p99_ms)}` : "");
  setStat("ttft", lat && hasTtft ? ms(lat.ttft_p50_ms) : "–", lat && hasTtft ? `p95 ${ms(lat.ttft_p95_ms)}` : "");
}

/** @param {number} days */
function rangeText(days) {
  return days === 1 ? "the last 24 hours" : `the last ${days} days`;
}

/** @param {UsageDocument} data */
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

/**
 * " of which cached N" when the upstream read any of the prompt from its cache; else nothing.
 * @param {number | undefined} cached
 */
function ofWhichCached(cached) {
  return cached ? ` of which cached ${count(cached)}` : "";
}

/** @param {UsageDocument} data */
function tokensChart(data) {
  const days = data.per_day;
  const t = data.totals;
  columnChart($("chart-tokens"), "chart-tokens-svg", {
    title: "Tokens per day",
    note: "Cached tokens (read from the upstream's prompt cache) are part of the prompt, reasoning part of the completion; shown apart.",
    summary: `${rangeText(data.days)}: ${count(t.prompt_tokens + t.completion_tokens)} tokens, prompt ${count(t.prompt_tokens)}` +
      `${ofWhichCached(t.cached_tokens)}, completion ${count(t.completion_tokens)} of which reasoning ${count(t.reasoning_tokens)}.`,
    labels: days.map((d) => d.day),
    tickLabel: (label) => label.slice(5),
    series: [
      { name: "prompt", className: "s-prompt", values: days.map((d) => Math.max(0, d.prompt_tokens - (d.cached_tokens || 0))) },
      { name: "cached", className: "s-cached", values: days.map((d) => d.cached_tokens || 0) },
      { name: "completion", className: "s-completion", values: days.map((d) => Math.max(0, d.completion_tokens - d.reasoning_tokens)) },
      { name: "reasoning", className: "s-reasoning", values: days.map((d) => d.reasoning_tokens) },
    ],
    barTitle: (i) => {
      const d = days[i];
      return `${d.day}: ${count(d.prompt_tokens + d.completion_tokens)} tokens (prompt ${count(d.prompt_tokens)}` +
        `${ofWhichCached(d.cached_tokens)}, completion ${count(d.completion_tokens)}, of which reasoning ${count(d.reasoning_tokens)})`;
    },
    yTitle: "tokens",
    xTitle: "day (UTC)",
    legend: [["prompt", "s-prompt"], ["cached", "s-cached"], ["completion", "s-completion"], ["reasoning", "s-reasoning"]],
  });
}

/**
 * The first TOP entries, the rest summed into one.
 * @param {Entry[]} entries
 * @returns {Entry[]}
 */
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

/**
 * @param {string} id the figure's id
 * @param {string} title
 * @param {string} what what one bar stands for ("model", "client key"...)
 * @param {Entry[]} entries
 * @param {string} range
 */
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

/** @param {UsageDocument} data */
function latencyChart(data) {
  const lat = data.latency;
  /** @type {[name: string, value: number | null | undefined, className: string][]} */
  const all = lat ? [
    ["p50", lat.p50_ms, "s-latency"], ["p90", lat.p90_ms, "s-latency"], ["p95", lat.p95_ms, "s-latency"],
    ["p99", lat.p99_ms, "s-latency"], ["first token p50", lat.ttft_p50_ms, "s-ttft"],
    ["first token p95", lat.ttft_p95_ms, "s-ttft"],
  ] : [];
  /** @type {[name: string, value: number, className: string][]} */
  const points = [];
  for (const [name, value, className] of all) if (value !== null && value !== undefined) points.push([name, value, className]);
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

/** @param {UsageDocument} data */
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

/** @param {Recent} r */
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
    el("td", { class: "num", title: estimate || (r.cached_tokens ? `${count(r.cached_tokens)} of them cached` : null) },
      about + count(r.prompt_tokens),
      r.cached_tokens ? el("span", { class: "muted small", "data-testid": "cached" }, ` (${short(r.cached_tokens)} cached)`) : null),
    el("td", { class: "num", title: estimate }, about + count(r.completion_tokens)),
    el("td", { class: "num" }, r.reasoning_tokens ? count(r.reasoning_tokens) : ""),
    el("td", { class: "num" }, ms(r.latency_ms)),
    el("td", { class: "num" }, r.ttft_ms === null ? "" : ms(r.ttft_ms)),
    el("td", { class: "num" }, r.attempts),
    el("td", { class: "muted" }, r.error || ""));
}

/** @param {UsageDocument} data */
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
  const body = tableBody(table);
  body.replaceChildren(...data.recent.map(recentRow));
  if (!data.recent.length) body.append(placeholderRow(table, "No requests yet."));
}

/** Fetch the usage for the chosen range and show it if its numbers changed. */
export async function load() {
  const asked = ++view.asked;
  const days = view.days;
  try {
    /** @type {UsageDocument} */
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

/** @param {number} days */
function choose(days) {
  view.days = days;
  view.shown = "";
  for (const button of $("usage-range").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.days) === days));
  }
  $("usage-csv", HTMLAnchorElement).href = "/api/usage.csv?days=" + days;
  return load();
}

export function wire() {
  $("usage-range").addEventListener("click", (event) => {
    const button = closest(event, "button[data-days]");
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
