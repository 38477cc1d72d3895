// @ts-check
// Small SVG charts drawn at the width they are shown at (so their text stays readable on a phone):
// stacked columns over days, and horizontal bars over names. Each bar is a <g class="bar"> whose
// <title> says its numbers (a tooltip on hover); the <svg> has a <title> and a <desc> for screen readers.
// Colours come from CSS classes (.s-ok, .s-err, ...), so dark mode restyles them.

import { el, svg } from "./dom.js";
import { short } from "./format.js";

const FALLBACK_WIDTH = 560;
/** Rough width of one character of the 12px chart text, for laying out and shortening names. */
const CHAR_WIDTH = 7;

/** @typedef {[name: string, className: string]} LegendEntry */

/**
 * What every chart has: its heading, a sentence for screen readers, and the colours' legend.
 * @typedef {object} ChartText
 * @property {string} title
 * @property {string} [summary]
 * @property {string} [note]
 * @property {LegendEntry[]} [legend]
 */

/**
 * Stacked columns, one per label (a day), bottom-up in the order of `series`.
 * @typedef {ChartText & {
 *   labels: string[],
 *   tickLabel: (label: string) => string,
 *   series: { name: string, className: string, values: number[] }[],
 *   barTitle: (index: number) => string,
 *   yTitle: string,
 *   xTitle: string,
 * }} ColumnSpec
 */

/**
 * Horizontal bars, one per row, each stacked from its segments.
 * @typedef {{ name: string, segments: { value: number, className: string }[], valueText: string, barTitle: string }} BarRow
 * @typedef {ChartText & { rows: BarRow[], emptyText: string }} BarSpec
 */

/**
 * A rounded axis: the top value and the step between gridlines, for counts.
 *   niceScale(87, 4)  ->  { top: 100, step: 25 }   niceScale(0, 4)  ->  { top: 4, step: 1 }
 * @param {number} max
 * @param {number} ticks
 * @returns {{ top: number, step: number }}
 */
export function niceScale(max, ticks) {
  if (!(max > 0)) return { top: ticks, step: 1 };
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normal = raw / magnitude;
  const step = Math.max(1, (normal <= 1 ? 1 : normal <= 2 ? 2 : (normal <= 2.5 && magnitude >= 10) ? 2.5 : normal <= 5 ? 5 : 10) * magnitude);
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * Shorten a name to fit `chars` characters, with an ellipsis.
 * @param {string} name
 * @param {number} chars
 */
export function fit(name, chars) {
  return name.length <= chars ? name : name.slice(0, Math.max(1, chars - 1)) + "…";
}

/**
 * @param {HTMLElement} figure
 * @param {ChartText} spec
 * @returns {HTMLElement} the box the chart goes in
 */
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

/**
 * @param {string} id
 * @param {ChartText} spec
 * @param {number} width
 * @param {number} height
 */
function chartCanvas(id, spec, width, height) {
  const titleId = id + "-title";
  const descId = id + "-desc";
  return svg("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": spec.title, "aria-labelledby": titleId, "aria-describedby": descId, class: "chart-svg",
  }, svg("title", { id: titleId }, spec.title), svg("desc", { id: descId }, spec.summary || ""));
}

/**
 * Draw stacked columns into `figure`.
 * @param {HTMLElement} figure
 * @param {string} id the svg's id, which its title and description ids start with
 * @param {ColumnSpec} spec
 */
export function columnChart(figure, id, spec) {
  const box = chartFrame(figure, spec);
  const width = box.clientWidth || FALLBACK_WIDTH;
  const height = 240;
  const margin = { top: 12, right: 8, bottom: 44, left: 58 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const n = spec.labels.length;
  const totals = spec.labels.map((_, i) => spec.series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const { top, step } = niceScale(Math.max(0, ...totals), 4);
  /** @param {number} value */
  const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
  const chart = chartCanvas(id, spec, width, height);

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
 * Draw horizontal bars into `figure`: the name above each bar on the left, its numbers on the right.
 * @param {HTMLElement} figure
 * @param {string} id the svg's id, which its title and description ids start with
 * @param {BarSpec} spec
 */
export function barChart(figure, id, spec) {
  const box = chartFrame(figure, spec);
  if (!spec.rows.length) {
    box.append(el("p", { class: "muted empty-chart" }, spec.emptyText));
    return;
  }
  const width = box.clientWidth || FALLBACK_WIDTH;
  const rowHeight = 38;
  const height = spec.rows.length * rowHeight + 4;
  const chart = chartCanvas(id, spec, width, height);
  const max = Math.max(1, ...spec.rows.map((row) => row.segments.reduce((sum, s) => sum + s.value, 0)));
  spec.rows.forEach((row, i) => {
    const top = 2 + i * rowHeight;
    const nameRoom = Math.floor((width - row.valueText.length * CHAR_WIDTH - 16) / CHAR_WIDTH);
    const bar = svg("g", { class: "bar", "data-name": row.name }, svg("title", {}, row.barTitle));
    bar.append(
      // A name is data (a model, a key's label), never to be translated.
      svg("text", { class: "label", x: 0, y: top + 13, translate: "no" }, fit(row.name, Math.max(4, nameRoom))),
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
