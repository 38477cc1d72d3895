from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from iflow2api.state.records import UsageRow
from iflow2api.usage.stats import csv_chunks, percentile, summarize

# 2024-05-10 12:00:00 UTC
NOW = datetime(2024, 5, 10, 12, tzinfo=UTC).timestamp()
DAY = 86_400.0


def usage(**overrides: Any) -> UsageRow:
    fields: dict[str, Any] = {
        "at": NOW - 60,
        "key": "alice",
        "account": "acc-1",
        "model": "glm-4.7",
        "dialect": "chat",
        "stream": True,
        "status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "reasoning_tokens": 5,
        "latency_ms": 100.0,
        "ttft_ms": 40.0,
        "attempts": 1,
        "error": None,
    }
    fields.update(overrides)
    return UsageRow(**fields)


GROUP_KEYS = {"name", "requests", "errors", "error_rate", "tokens", "p50_ms", "p95_ms"}


def test_the_summary_has_exactly_the_designed_shape() -> None:
    summary = summarize([usage()], now=NOW, days=7)
    assert set(summary) == {
        "days",
        "since",
        "until",
        "totals",
        "per_day",
        "per_model",
        "per_key",
        "per_account",
        "per_dialect",
        "latency",
        "recent",
    }
    assert set(summary["totals"]) == {
        "requests",
        "errors",
        "error_rate",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "total_tokens",
    }
    assert set(summary["per_day"][0]) == {
        "day",
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "cached_tokens",
    }
    for breakdown in ("per_model", "per_key", "per_account", "per_dialect"):
        assert set(summary[breakdown][0]) == GROUP_KEYS
    assert set(summary["latency"]) == {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "ttft_p95_ms"}
    assert set(summary["recent"][0]) == {
        "at",
        "key",
        "account",
        "model",
        "dialect",
        "stream",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "latency_ms",
        "ttft_ms",
        "attempts",
        "error",
        "estimated",
        "cached_tokens",
    }
    assert (summary["days"], summary["since"], summary["until"]) == (7, NOW - 7 * DAY, NOW)


def test_totals_count_errors_as_status_400_and_up() -> None:
    rows = [
        usage(status=200, prompt_tokens=1, completion_tokens=2, reasoning_tokens=1),
        usage(status=399, prompt_tokens=10, completion_tokens=20, reasoning_tokens=0),
        usage(status=400, prompt_tokens=0, completion_tokens=0, reasoning_tokens=0, error="bad"),
        usage(status=503, prompt_tokens=100, completion_tokens=0, reasoning_tokens=0, error="upstream"),
    ]
    assert summarize(rows, now=NOW, days=1)["totals"] == {
        "requests": 4,
        "errors": 2,
        "error_rate": 0.5,
        "prompt_tokens": 111,
        "completion_tokens": 22,
        "reasoning_tokens": 1,
        "cached_tokens": 0,
        "total_tokens": 133,
    }


def test_cached_tokens_add_up_per_day_and_in_totals_and_show_per_row() -> None:
    rows = [
        usage(at=NOW - DAY, prompt_tokens=1000, cached_tokens=768),
        usage(at=NOW - 60, prompt_tokens=500, cached_tokens=256),
        usage(at=NOW - 30, prompt_tokens=40),
    ]
    summary = summarize(rows, now=NOW, days=2)
    assert summary["totals"]["cached_tokens"] == 1024
    assert summary["totals"]["total_tokens"] == 1540 + 3 * 20  # cached are part of the prompt's
    assert [day["cached_tokens"] for day in summary["per_day"]] == [0, 768, 256]
    assert [row["cached_tokens"] for row in summary["recent"]] == [0, 256, 768]


def test_rows_outside_the_range_are_ignored_and_its_ends_are_included() -> None:
    since = NOW - 2 * DAY
    rows = [
        usage(at=since - 0.001, prompt_tokens=1),
        usage(at=since, prompt_tokens=10),
        usage(at=NOW, prompt_tokens=100),
        usage(at=NOW + 0.001, prompt_tokens=1000),
    ]
    summary = summarize(rows, now=NOW, days=2)
    assert summary["totals"]["requests"] == 2
    assert summary["totals"]["prompt_tokens"] == 110
    assert [row["prompt_tokens"] for row in summary["recent"]] == [100, 10]


def test_per_day_lists_every_utc_date_of_the_range_oldest_first() -> None:
    rows = [
        usage(at=NOW - 3 * DAY, prompt_tokens=1),  # 2024-05-07 12:00, the range's first instant
        usage(at=datetime(2024, 5, 9, 23, 59, 59, tzinfo=UTC).timestamp(), status=500, completion_tokens=7),
        usage(at=datetime(2024, 5, 10, 0, 0, tzinfo=UTC).timestamp(), reasoning_tokens=9),
    ]
    summary = summarize(rows, now=NOW, days=3)
    counted = "requests errors prompt_tokens completion_tokens reasoning_tokens cached_tokens"
    base = dict.fromkeys(counted.split(), 0)
    assert summary["per_day"] == [
        {
            **base,
            "day": "2024-05-07",
            "requests": 1,
            "prompt_tokens": 1,
            "completion_tokens": 20,
            "reasoning_tokens": 5,
        },
        {**base, "day": "2024-05-08"},
        {
            **base,
            "day": "2024-05-09",
            "requests": 1,
            "errors": 1,
            "prompt_tokens": 10,
            "completion_tokens": 7,
            "reasoning_tokens": 5,
        },
        {
            **base,
            "day": "2024-05-10",
            "requests": 1,
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "reasoning_tokens": 9,
        },
    ]
    for field in ("requests", "errors", "prompt_tokens", "completion_tokens", "reasoning_tokens"):
        assert sum(day[field] for day in summary["per_day"]) == summary["totals"][field]


def test_breakdowns_name_missing_keys_and_accounts_and_sort_by_requests() -> None:
    rows = [
        usage(key=None, account=None, model="b", dialect="anthropic", status=429, latency_ms=5.0),
        usage(key=None, account=None, model="b", dialect="anthropic", latency_ms=15.0),
        usage(key="alice", account="acc-1", model="a", dialect="chat", latency_ms=30.0),
        usage(key="zed", account="acc-2", model="c", dialect="responses", status=500, latency_ms=7.0),
    ]
    summary = summarize(rows, now=NOW, days=1)
    assert summary["per_key"] == [
        {
            "name": "(no key)",
            "requests": 2,
            "errors": 1,
            "error_rate": 0.5,
            "tokens": 60,
            "p50_ms": 5.0,
            "p95_ms": 15.0,
        },
        {
            "name": "alice",
            "requests": 1,
            "errors": 0,
            "error_rate": 0.0,
            "tokens": 30,
            "p50_ms": 30.0,
            "p95_ms": 30.0,
        },
        {
            "name": "zed",
            "requests": 1,
            "errors": 1,
            "error_rate": 1.0,
            "tokens": 30,
            "p50_ms": 7.0,
            "p95_ms": 7.0,
        },
    ]
    assert [group["name"] for group in summary["per_account"]] == ["(none)", "acc-1", "acc-2"]
    assert [group["name"] for group in summary["per_model"]] == ["b", "a", "c"]
    assert [group["name"] for group in summary["per_dialect"]] == ["anthropic", "chat", "responses"]


def test_latency_percentiles_are_nearest_rank_rounded_to_a_tenth() -> None:
    rows = [usage(latency_ms=float(ms) + 0.04, ttft_ms=None) for ms in range(100, 0, -1)]
    rows += [usage(latency_ms=1.0, ttft_ms=ms) for ms in (12.345, 50.0, 99.99)]
    latency = summarize(rows, now=NOW, days=1)["latency"]
    # 103 values: 1.0 three times, then 1.04 .. 100.04; rank = ceil(p/100 * 103).
    assert latency == {
        "p50_ms": 49.0,  # rank 52: 49.04
        "p90_ms": 90.0,  # rank 93: 90.04
        "p95_ms": 95.0,  # rank 98: 95.04
        "p99_ms": 99.0,  # rank 102: 99.04
        "ttft_p50_ms": 50.0,
        "ttft_p95_ms": 100.0,
    }


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([10.0, 20.0, 30.0, 40.0, 50.0], 50, 30.0),  # linear interpolation would agree here...
        ([10.0, 20.0, 30.0, 40.0], 50, 20.0),  # ...but say 25 here,
        ([10.0, 20.0, 30.0, 40.0, 50.0], 90, 50.0),  # 46 here,
        ([10.0, 20.0, 30.0, 40.0, 50.0], 20, 10.0),  # and 18 here
        ([7.25], 99, 7.2),
        ([1.0, 2.0], 0, 1.0),
        ([], 50, None),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_an_empty_range_gives_zeros_and_nulls() -> None:
    summary = summarize([usage(at=NOW - 10 * DAY)], now=NOW, days=1)
    assert summary["totals"]["requests"] == 0
    assert summary["totals"]["error_rate"] == 0.0
    assert [day["requests"] for day in summary["per_day"]] == [0, 0]
    assert (
        summary["per_model"] == summary["per_key"] == summary["per_account"] == summary["per_dialect"] == []
    )
    assert set(summary["latency"].values()) == {None}
    assert summary["recent"] == []


def test_ttft_percentiles_are_null_when_nothing_was_streamed() -> None:
    latency = summarize([usage(ttft_ms=None)], now=NOW, days=1)["latency"]
    assert latency["p50_ms"] == 100.0
    assert latency["ttft_p50_ms"] is None and latency["ttft_p95_ms"] is None


def test_recent_holds_the_50_newest_newest_first() -> None:
    rows = [usage(at=NOW - 1000 + i, prompt_tokens=i) for i in range(60)]
    recent = summarize(rows[::-1], now=NOW, days=1)["recent"]
    assert [row["prompt_tokens"] for row in recent] == list(range(59, 9, -1))
    assert recent[0] == {field.name: getattr(rows[59], field.name) for field in dataclasses.fields(UsageRow)}


def test_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="days"):
        summarize([], now=NOW, days=0)


def parse_csv(chunks: list[bytes]) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))


def test_csv_has_a_header_then_one_crlf_line_per_row() -> None:
    rows = [
        usage(at=NOW + 0.25, key=None, ttft_ms=None, stream=False, error="rate_limit_exceeded"),
        usage(estimated=True),
    ]
    chunks = list(csv_chunks(rows))
    assert len(chunks) == 3
    assert all(chunk.endswith(b"\r\n") and chunk.count(b"\r\n") == 1 for chunk in chunks)
    header, first, second = parse_csv(chunks)
    assert header == ["time", *(field.name for field in dataclasses.fields(UsageRow))]
    assert first == [
        "2024-05-10T12:00:00.250Z",
        str(NOW + 0.25),
        "",
        "acc-1",
        "glm-4.7",
        "chat",
        "false",
        "200",
        "10",
        "20",
        "5",
        "100.0",
        "",
        "1",
        "rate_limit_exceeded",
        "false",
        "0",
    ]
    assert second[0] == "2024-05-10T11:59:00.000Z"
    assert second[2] == "alice" and second[6] == "true" and second[12] == "40.0" and second[14] == ""
    assert second[-2] == "true"  # estimated: the upstream reported no usage


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_defuses_text_a_spreadsheet_would_run(text: str) -> None:
    _, cells = parse_csv(list(csv_chunks([usage(model=text, key=text)])))
    assert cells[4] == "'" + text
    assert cells[2] == "'" + text


def test_csv_keeps_harmless_text_and_quotes_what_needs_it() -> None:
    awkward = 'a "quoted", multi\nline model'
    _, cells = parse_csv(list(csv_chunks([usage(model=awkward, key="x=1")])))
    assert cells[4] == awkward
    assert cells[2] == "x=1"


def test_csv_is_lazy() -> None:
    def rows() -> Iterator[UsageRow]:
        yield usage()
        raise AssertionError("read past the first row")

    chunks = csv_chunks(rows())
    assert next(chunks).startswith(b"time,at,")
    assert next(chunks).startswith(b"2024-05-10T11:59:00.000Z,")
