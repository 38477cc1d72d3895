// @ts-check
// The usage section: totals, charts over days and names, latency, the newest requests, CSV export.

import { api } from "./api.js";
import { barChart, columnChart } from "./charts.js";
import { $, closest, el, find, placeholderRow, tableBody } from "./dom.js";
import { count, ms, percent, short, stamp } from "./format.js";
import { language, onLanguageChange, t, tn } from "./i18n.js";
import { messageBox } from "./phrase.js";

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

/** @param {number} n */
const requestsText = (n) => tn("usage.requests", n);
/** @param {number} n */
const errorsText = (n) => tn("usage.errors", n);

const box = messageBox("usage-message", () => t("usage.failed"));

/**
 * @param {string} name
 * @param {string | (string | Node)[]} value
 * @param {string | Node} sub
 */
function setStat(name, value, sub) {
  const stat = find(document, `#usage-totals [data-stat="${name}"]`);
  find(stat, ".value").replaceChildren(...(Array.isArray(value) ? value : [value]));
  find(stat, ".sub").replaceChildren(sub);
}

/**
 * Percentiles ("p90 1.90 s") are notation, not words: the same in every language.
 * @param {string} text
 */
const notation = (text) => el("span", { translate: "no" }, text);

/** @param {UsageDocument} data */
function renderTotals(data) {
  const totals = data.totals;
  // null when no rows (the design), or an object of nulls: either way, nothing to show.
  const lat = data.latency && data.latency.p50_ms !== null && data.latency.p50_ms !== undefined ? data.latency : null;
  const hasTtft = lat && lat.ttft_p50_ms !== null && lat.ttft_p50_ms !== undefined;
  setStat("requests", count(totals.requests), errorsText(totals.errors));
  const tokens = {
    prompt: short(totals.prompt_tokens), cached: short(totals.cached_tokens),
    completion: short(totals.completion_tokens), reasoning: short(totals.reasoning_tokens),
  };
  setStat("tokens", short(totals.prompt_tokens + totals.completion_tokens),
    totals.cached_tokens ? t("usage.stat.tokens.cached", tokens) : t("usage.stat.tokens.sub", tokens));
  setStat("error-rate", totals.requests ? percent(totals.error_rate) : "–",
    totals.requests ? t("usage.stat.error-rate.sub", { errors: count(totals.errors), requests: count(totals.requests) }) : "");
  setStat("latency", lat ? [ms(lat.p50_ms), el("span", { class: "second" }, " / " + ms(lat.p95_ms))] : "–",
    lat ? notation(`p90 ${ms(lat.p90_ms)} · p99 ${ms(lat.p99_ms)}`) : "");
  setStat("ttft", lat && hasTtft ? ms(lat.ttft_p50_ms) : "–", lat && hasTtft ? notation(`p95 ${ms(lat.ttft_p95_ms)}`) : "");
}

/** @param {number} days */
function rangeText(days) {
  return days === 1 ? t("usage.range.last-day") : t("usage.range.last-days", { days: count(days) });
}

/** @param {UsageDocument} data */
function requestsChart(data) {
  const days = data.per_day;
  const busiest = days.reduce((best, d) => (d.requests > best.requests ? d : best), days[0] || { requests: 0 });
  const said = { range: rangeText(data.days), requests: requestsText(data.totals.requests), errors: errorsText(data.totals.errors) };
  columnChart($("chart-requests"), "chart-requests-svg", {
    title: t("charts.requests.title"),
    summary: busiest && busiest.requests
      ? t("charts.requests.summary.busiest", { ...said, day: busiest.day, busiest: count(busiest.requests) })
      : t("charts.requests.summary", said),
    labels: days.map((d) => d.day),
    tickLabel: (label) => label.slice(5),
    series: [
      { name: "answered", className: "s-ok", values: days.map((d) => d.requests - d.errors) },
      { name: "errors", className: "s-err", values: days.map((d) => d.errors) },
    ],
    barTitle: (i) => t("charts.requests.bar", { day: days[i].day, requests: requestsText(days[i].requests), errors: errorsText(days[i].errors) }),
    yTitle: t("charts.requests.axis"),
    xTitle: t("charts.day-axis"),
    legend: [[t("charts.answered"), "s-ok"], [t("charts.errors"), "s-err"]],
  });
}

/**
 * The token counts of a day or of the range, as the tokens chart's sentences name them; `cached` is
 * its own clause when the upstream read any of the prompt from its cache, else nothing.
 * @param {{ prompt_tokens: number, completion_tokens: number, reasoning_tokens: number, cached_tokens?: number }} d
 */
function tokenWords(d) {
  return {
    total: count(d.prompt_tokens + d.completion_tokens),
    prompt: count(d.prompt_tokens),
    cached: d.cached_tokens ? t("charts.tokens.of-which-cached", { count: count(d.cached_tokens) }) : "",
    completion: count(d.completion_tokens),
    reasoning: count(d.reasoning_tokens),
  };
}

/** @param {UsageDocument} data */
function tokensChart(data) {
  const days = data.per_day;
  columnChart($("chart-tokens"), "chart-tokens-svg", {
    title: t("charts.tokens.title"),
    note: t("charts.tokens.note"),
    summary: t("charts.tokens.summary", { range: rangeText(data.days), ...tokenWords(data.totals) }),
    labels: days.map((d) => d.day),
    tickLabel: (label) => label.slice(5),
    series: [
      { name: "prompt", className: "s-prompt", values: days.map((d) => Math.max(0, d.prompt_tokens - (d.cached_tokens || 0))) },
      { name: "cached", className: "s-cached", values: days.map((d) => d.cached_tokens || 0) },
      { name: "completion", className: "s-completion", values: days.map((d) => Math.max(0, d.completion_tokens - d.reasoning_tokens)) },
      { name: "reasoning", className: "s-reasoning", values: days.map((d) => d.reasoning_tokens) },
    ],
    barTitle: (i) => t("charts.tokens.bar", { day: days[i].day, ...tokenWords(days[i]) }),
    yTitle: t("charts.tokens.axis"),
    xTitle: t("charts.day-axis"),
    legend: [[t("charts.tokens.prompt"), "s-prompt"], [t("charts.tokens.cached"), "s-cached"],
      [t("charts.tokens.completion"), "s-completion"], [t("charts.tokens.reasoning"), "s-reasoning"]],
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
    name: tn("charts.others", rest.length), requests, errors, error_rate: requests ? errors / requests : 0,
    tokens: rest.reduce((sum, e) => sum + e.tokens, 0), p50_ms: null, p95_ms: null,
  }];
}

/** @param {Entry} e */
function entryTitle(e) {
  const said = {
    name: e.name, requests: requestsText(e.requests), errors: errorsText(e.errors), rate: percent(e.error_rate), tokens: count(e.tokens),
  };
  if (e.p50_ms === null || e.p50_ms === undefined) return t("charts.names.bar", said);
  return t("charts.names.bar.latency", { ...said, p50: ms(e.p50_ms), p95: ms(e.p95_ms) });
}

/**
 * An entry's name as the page shows it: the names usage/stats.py gives requests without a key or an
 * account (NO_KEY, NO_ACCOUNT) are words, in the page's language; every other name is data.
 * @param {string} by
 * @param {string} name
 */
function nameOf(by, name) {
  if (by === "keys" && name === "(no key)") return t("usage.recent.no-key");
  if (by === "accounts" && name === "(none)") return t("usage.recent.no-account");
  return name;
}

/**
 * @param {"models" | "keys" | "accounts" | "dialects"} by what one bar stands for
 * @param {Entry[]} entries
 * @param {string} range
 */
function namesChart(by, entries, range) {
  const id = "chart-" + by;
  barChart($(id), id + "-svg", {
    title: t(`charts.${by}.title`),
    summary: t(`charts.${by}.summary`, { range }),
    rows: topRows(entries.map((e) => ({ ...e, name: nameOf(by, e.name) }))).map((e) => ({
      name: e.name,
      segments: [{ value: e.requests - e.errors, className: "s-ok" }, { value: e.errors, className: "s-err" }],
      valueText: t("charts.names.value", { requests: short(e.requests), rate: percent(e.error_rate) }),
      barTitle: entryTitle(e),
    })),
    legend: [[t("charts.answered"), "s-ok"], [t("charts.errors"), "s-err"]],
    emptyText: t("charts.empty"),
  });
}

/** @param {UsageDocument} data */
function latencyChart(data) {
  const lat = data.latency;
  const firstToken = (/** @type {string} */ p) => t("charts.latency.first-token", { p });
  /** @type {[name: string, value: number | null | undefined, className: string][]} */
  const all = lat ? [
    ["p50", lat.p50_ms, "s-latency"], ["p90", lat.p90_ms, "s-latency"], ["p95", lat.p95_ms, "s-latency"],
    ["p99", lat.p99_ms, "s-latency"], [firstToken("p50"), lat.ttft_p50_ms, "s-ttft"],
    [firstToken("p95"), lat.ttft_p95_ms, "s-ttft"],
  ] : [];
  /** @type {[name: string, value: number, className: string][]} */
  const points = [];
  for (const [name, value, className] of all) if (value !== null && value !== undefined) points.push([name, value, className]);
  barChart($("chart-latency"), "chart-latency-svg", {
    title: t("charts.latency.title"),
    note: t("charts.latency.note"),
    summary: points.map(([name, value]) => `${name} ${ms(value)}`).join(t("charts.list-separator")) || t("usage.none"),
    rows: points.map(([name, value, className]) => ({
      name, segments: [{ value, className }], valueText: ms(value), barTitle: `${name}: ${ms(value)}`,
    })),
    legend: [[t("charts.latency.whole"), "s-latency"], [t("charts.latency.first"), "s-ttft"]],
    emptyText: t("charts.empty"),
  });
}

/** @param {UsageDocument} data */
function renderCharts(data) {
  const range = rangeText(data.days);
  requestsChart(data);
  tokensChart(data);
  namesChart("models", data.per_model, range);
  namesChart("keys", data.per_key, range);
  namesChart("accounts", data.per_account, range);
  latencyChart(data);
  namesChart("dialects", data.per_dialect || [], range);
}

/**
 * Names from the API (keys, accounts, models, dialects, error codes) are data: never translated.
 * @param {string} text
 */
const named = (text) => el("span", { translate: "no" }, text);

/** @param {Recent} r */
function recentRow(r) {
  const failed = r.status >= 400;
  // The upstream sent no usage: the counts are the gateway's own estimate.
  const about = r.estimated ? "≈" : "";
  const estimate = r.estimated ? t("usage.recent.estimated") : null;
  return el("tr", { class: failed ? "failed" : "" },
    el("td", { title: new Date(r.at * 1000).toLocaleString(language()) }, stamp(r.at)),
    el("td", {}, r.key === null ? t("usage.recent.no-key") : named(r.key)),
    el("td", {}, r.account === null ? t("usage.recent.no-account") : named(r.account)),
    el("td", {}, named(r.model)),
    el("td", {}, named(r.dialect), r.stream ? el("span", { class: "muted small" }, " " + t("usage.recent.stream")) : null),
    el("td", {}, el("span", { class: "state " + (failed ? "state-error" : "state-ok") }, r.status)),
    el("td", { class: "num", title: estimate || (r.cached_tokens ? t("usage.recent.cached.title", { count: count(r.cached_tokens) }) : null) },
      about + count(r.prompt_tokens),
      r.cached_tokens
        ? el("span", { class: "muted small", "data-testid": "cached" }, " " + t("usage.recent.cached", { count: short(r.cached_tokens) }))
        : null),
    el("td", { class: "num", title: estimate }, about + count(r.completion_tokens)),
    el("td", { class: "num" }, r.reasoning_tokens ? count(r.reasoning_tokens) : ""),
    el("td", { class: "num" }, ms(r.latency_ms)),
    el("td", { class: "num" }, r.ttft_ms === null ? "" : ms(r.ttft_ms)),
    el("td", { class: "num" }, r.attempts),
    el("td", { class: "muted" }, r.error ? named(r.error) : ""));
}

/** @param {UsageDocument} data */
function render(data) {
  renderTotals(data);
  const empty = !data.totals.requests;
  $("usage-empty").hidden = !empty;
  $("usage-empty-text").textContent = t("usage.empty.text", { range: rangeText(data.days) });
  $("usage-charts").hidden = empty;
  if (empty) return;
  view.width = $("usage-charts").clientWidth;
  renderCharts(data);
  const table = $("usage-recent");
  const body = tableBody(table);
  body.replaceChildren(...data.recent.map(recentRow));
  if (!data.recent.length) body.append(placeholderRow(table, t("usage.none")));
}

/**
 * Show `data` if its numbers changed since the last it showed.
 * @param {UsageDocument} data
 */
function show(data) {
  view.data = data;
  // The time window moves on every call; redraw only when the numbers did.
  const fingerprint = JSON.stringify({ ...data, since: 0, until: 0 });
  if (fingerprint !== view.shown) {
    view.shown = fingerprint;
    render(data);
  }
}

/** Fetch the usage for the chosen range and show it if its numbers changed. */
export async function load() {
  const asked = ++view.asked;
  const days = view.days;
  try {
    /** @type {UsageDocument} */
    const data = await api("/api/usage?days=" + days);
    if (asked !== view.asked) return; // the range changed while this was on its way
    box.text("", "");
    show(data);
  } catch (error) {
    if (asked === view.asked) box.fail(error);
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
  // Every word of the section comes from render(): a new language redraws it from the numbers it has.
  onLanguageChange(() => {
    view.shown = "";
    if (view.data) show(view.data);
    box.again();
  });
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
