// @ts-check
// How numbers, durations and times read on the page: in the page's language (i18n.js), not the
// browser's, so a switch of language changes them too ("1.2M" in English is "120万" in Chinese).

import { language, t } from "./i18n.js";

/**
 * 1234567 -> "1,234,567"
 * @param {number | null | undefined} value
 */
export function count(value) {
  return new Intl.NumberFormat(language(), { maximumFractionDigits: 0 }).format(value || 0);
}

/**
 * 1234567 -> "1.2M"; small numbers stay whole.
 * @param {number | null | undefined} value
 */
export function short(value) {
  if (Math.abs(value || 0) < 10000) return count(value);
  return new Intl.NumberFormat(language(), { notation: "compact", maximumFractionDigits: 1 }).format(value || 0);
}

/**
 * 0.0213 -> "2.1%"
 * @param {number | null | undefined} ratio
 */
export function percent(ratio) {
  if (ratio === null || ratio === undefined) return "–";
  const value = ratio * 100;
  return (value > 0 && value < 0.1 ? "<0.1" : value.toFixed(value >= 10 || value === 0 ? 0 : 1)) + "%";
}

/**
 * 850 -> "850 ms", 1830 -> "1.83 s"
 * @param {number | null | undefined} value
 */
export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1000) return Math.round(value) + " ms";
  if (value < 10000) return (value / 1000).toFixed(2) + " s";
  return (value / 1000).toFixed(1) + " s";
}

/**
 * Seconds left as a clock: 65 -> "1:05", 3725 -> "1:02:05"
 * @param {number} seconds
 */
export function clock(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
}

/**
 * An epoch time with how far away it is: "5/3/2025, 14:03 (in 6.5 h)"
 * @param {number | null | undefined} epochSeconds
 */
export function when(epochSeconds) {
  if (!epochSeconds) return t("format.unknown");
  const date = new Date(epochSeconds * 1000);
  const hours = (epochSeconds * 1000 - Date.now()) / 3600000;
  const left = hours <= 0
    ? t("format.expired")
    : hours < 48 ? t("format.in_hours", { hours: hours.toFixed(1) }) : t("format.in_days", { days: (hours / 24).toFixed(1) });
  return date.toLocaleString(language()) + " (" + left + ")";
}

/**
 * An epoch time as a short local date ("3 May 2025").
 * @param {number} epochSeconds
 */
export function dateOf(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleDateString(language(), { day: "numeric", month: "short", year: "numeric" });
}

/**
 * A request time: the clock for today, date and clock before.
 * @param {number} epochSeconds
 */
export function stamp(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  const time = date.toLocaleTimeString(language(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (date.toDateString() === new Date().toDateString()) return time;
  return date.toLocaleDateString(language(), { month: "short", day: "numeric" }) + " " + time;
}
