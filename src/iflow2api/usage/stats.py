"""What the dashboard shows and the CSV export holds, computed from usage rows; no I/O.

``summarize`` builds the ``GET /api/usage`` body (its shape is fixed by the issue 5 design);
``csv_chunks`` streams ``GET /api/usage.csv`` one line at a time so a month of rows is never held
as one string.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from iflow2api.state.records import UsageRow

DAY_SECONDS = 86_400
RECENT_ROWS = 50
NO_KEY = "(no key)"
NO_ACCOUNT = "(none)"


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of already sorted values, rounded to 0.1; None when empty.

    Nearest rank returns a value that was actually observed (the smallest one with at least ``p``
    percent of the values at or below it), so a p95 never reports a latency nobody saw.

    >>> percentile([10.0, 20.0, 30.0, 40.0], 50), percentile([10.0, 20.0, 30.0, 40.0], 95)
    (20.0, 40.0)
    >>> percentile([], 50) is None
    True
    """
    if not sorted_values:
        return None
    rank = max(math.ceil(p / 100 * len(sorted_values)), 1)
    return round(sorted_values[rank - 1], 1)


class _Group:
    __slots__ = ("errors", "latencies", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.tokens = 0
        self.latencies: list[float] = []

    def add(self, row: UsageRow, error: bool) -> None:
        self.requests += 1
        self.errors += error
        self.tokens += row.prompt_tokens + row.completion_tokens
        self.latencies.append(row.latency_ms)

    def as_json(self, name: str) -> dict[str, Any]:
        self.latencies.sort()
        return {
            "name": name,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests,
            "tokens": self.tokens,
            "p50_ms": percentile(self.latencies, 50),
            "p95_ms": percentile(self.latencies, 95),
        }


def _breakdown(
    rows: Sequence[UsageRow], errors: Sequence[bool], name: Callable[[UsageRow], str]
) -> list[dict[str, Any]]:
    groups: dict[str, _Group] = {}
    for row, error in zip(rows, errors, strict=True):
        group_name = name(row)
        group = groups.get(group_name)
        if group is None:
            group = groups[group_name] = _Group()
        group.add(row, error)
    ordered = sorted(groups.items(), key=lambda item: (-item[1].requests, item[0]))
    return [group.as_json(group_name) for group_name, group in ordered]


def _day_entry(day: int) -> dict[str, Any]:
    return {
        "day": date.fromordinal(date(1970, 1, 1).toordinal() + day).isoformat(),
        "requests": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
    }


#: What ``totals`` and each ``per_day`` entry add up.
_SUMMED = ("requests", "errors", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")


def _recent(row: UsageRow) -> dict[str, Any]:
    return {
        "at": row.at,
        "key": row.key,
        "account": row.account,
        "model": row.model,
        "dialect": row.dialect,
        "stream": row.stream,
        "status": row.status,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cached_tokens": row.cached_tokens,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "attempts": row.attempts,
        "error": row.error,
        "estimated": row.estimated,
    }


def summarize(rows: Sequence[UsageRow], *, now: float, days: int) -> dict[str, Any]:
    """The dashboard's view of the ``days`` days up to ``now`` (the ``GET /api/usage`` body).

    Rows outside ``[now - days * 86400, now]`` are ignored. ``per_day`` lists every UTC date that
    range touches, oldest first, zeros included; as the range rarely starts at midnight that is
    usually ``days + 1`` dates (the first one partial), so ``per_day`` always adds up to ``totals``.
    An error is a status >= 400; tokens are prompt + completion (reasoning is part of completion,
    cached tokens, the prompt tokens the upstream read from its cache, part of prompt).
    Latency percentiles are nearest-rank over every row in scope (errors included), in ms rounded
    to 0.1; each is None when there is nothing to measure.

    >>> summary = summarize([], now=86_400 * 3 + 60, days=1)
    >>> [d["day"] for d in summary["per_day"]], summary["totals"]["requests"], summary["latency"]["p50_ms"]
    (['1970-01-03', '1970-01-04'], 0, None)
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    since = now - days * DAY_SECONDS
    in_range = [row for row in rows if since <= row.at <= now]
    errors = [row.status >= 400 for row in in_range]

    first_day = int(since // DAY_SECONDS)
    per_day = [_day_entry(day) for day in range(first_day, int(now // DAY_SECONDS) + 1)]
    totals = {name: 0 for name in _SUMMED}
    for row, error in zip(in_range, errors, strict=True):
        for bucket in (totals, per_day[int(row.at // DAY_SECONDS) - first_day]):
            bucket["requests"] += 1
            bucket["errors"] += error
            bucket["prompt_tokens"] += row.prompt_tokens
            bucket["completion_tokens"] += row.completion_tokens
            bucket["reasoning_tokens"] += row.reasoning_tokens
            bucket["cached_tokens"] += row.cached_tokens

    latencies = sorted(row.latency_ms for row in in_range)
    first_tokens = sorted(row.ttft_ms for row in in_range if row.ttft_ms is not None)
    newest = heapq.nlargest(RECENT_ROWS, in_range, key=lambda row: row.at)
    return {
        "days": days,
        "since": since,
        "until": now,
        "totals": {
            "requests": totals["requests"],
            "errors": totals["errors"],
            "error_rate": totals["errors"] / totals["requests"] if totals["requests"] else 0.0,
            "prompt_tokens": totals["prompt_tokens"],
            "completion_tokens": totals["completion_tokens"],
            "reasoning_tokens": totals["reasoning_tokens"],
            "cached_tokens": totals["cached_tokens"],
            "total_tokens": totals["prompt_tokens"] + totals["completion_tokens"],
        },
        "per_day": per_day,
        "per_model": _breakdown(in_range, errors, lambda row: row.model),
        "per_key": _breakdown(in_range, errors, lambda row: NO_KEY if row.key is None else row.key),
        "per_account": _breakdown(
            in_range, errors, lambda row: NO_ACCOUNT if row.account is None else row.account
        ),
        "per_dialect": _breakdown(in_range, errors, lambda row: row.dialect),
        "latency": {
            "p50_ms": percentile(latencies, 50),
            "p90_ms": percentile(latencies, 90),
            "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "ttft_p50_ms": percentile(first_tokens, 50),
            "ttft_p95_ms": percentile(first_tokens, 95),
        },
        "recent": [_recent(row) for row in newest],
    }


CSV_COLUMNS: tuple[str, ...] = ("time", *(field.name for field in dataclasses.fields(UsageRow)))

# A spreadsheet runs a cell that starts with one of these as a formula, and the model name (and the
# key name) is text a client chose: "=HYPERLINK(...)" would run on the admin's machine when the
# export is opened. A leading quote makes the cell plain text. Tab and CR are on OWASP's list too.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _iso_utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_chunks(rows: Iterable[UsageRow]) -> Iterator[bytes]:
    r"""UTF-8 CSV (RFC 4180, CRLF line ends): the header, then one line per row.

    ``time`` is ``at`` in ISO-8601 UTC; the other columns are the ``UsageRow`` fields, in order.

    >>> row = UsageRow(at=0.0, key=None, account="a", model="=1+1", dialect="chat", stream=True, status=200)
    >>> [line.decode() for line in csv_chunks([row])][1]
    "1970-01-01T00:00:00.000Z,0.0,,a,'=1+1,chat,true,200,0,0,0,0.0,,1,,false,0\r\n"
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Iterable[object]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue().encode()

    yield line(CSV_COLUMNS)
    for row in rows:
        yield line((_iso_utc(row.at), *(_cell(getattr(row, name)) for name in CSV_COLUMNS[1:])))
