"""The report: the tables, the targets and the raw JSON, from what each target measured.

Every function here is pure over ``Outcome`` values, so the layout can be changed without a run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS = ("direct", "naive", "iflow2api")
PROXIES = ("naive", "iflow2api")


@dataclass(slots=True)
class Outcome:
    """Everything measured for one target; ``error`` says why it was not measured at all."""

    error: str | None = None
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    peak_rss_mb: float | None = None
    log_tail: str = ""


def count(result: dict[str, Any]) -> int:
    return int(result.get("requests", result.get("streams", 0)))


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    phase: str
    metric: str  # "rps", or the name of a percentile table in the phase's result
    stat: str = ""  # p50, p99…

    @property
    def is_rate(self) -> bool:
        return self.metric == "rps"

    def value(self, outcome: Outcome) -> float | None:
        result = outcome.phases.get(self.phase) or {}
        if self.is_rate:
            rate = result.get("rps")
            return None if rate is None else float(rate)
        table = result.get(self.metric) or {}
        stat = table.get(self.stat)
        return None if stat is None else float(stat)


HTTP_ROWS = [
    Row(f"{c:>2} conn  {what}", f"http_c{c}", metric, stat)
    for c in (1, 64)
    for what, metric, stat in (
        ("req/s", "rps", ""),
        ("p50 ms", "latency_us", "p50"),
        ("p99 ms", "latency_us", "p99"),
    )
]
STREAM_ROWS = [
    Row(f"{label} {stat} ms", "stream_c1", metric, stat)
    for label, metric in (
        ("first chunk", "first_chunk_us"),
        ("chunk latency", "chunk_latency_us"),
        ("chunk gap", "chunk_gap_us"),
    )
    for stat in ("p50", "p99")
]
COLUMNS = ("direct", "naive", "iflow2api", "vs direct", "added ms", "vs naive")


def cell(value: float | None, is_rate: bool) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if is_rate else f"{value / 1000:.3f}"


def ratio(a: float | None, b: float | None) -> str:
    return "" if a is None or not b else f"{a / b:.3g}x"


def table(title: str, rows: list[Row], outcomes: dict[str, Outcome]) -> list[str]:
    lines = [title, f"{'':<22}" + "".join(f"{c:>11}" for c in COLUMNS)]
    for row in rows:
        values = {name: row.value(outcomes[name]) for name in TARGETS}
        ours, direct = values["iflow2api"], values["direct"]
        added = "" if row.is_rate or ours is None or direct is None else f"{(ours - direct) / 1000:+.3f}"
        extra = [ratio(ours, direct), added, ratio(ours, values["naive"]) if row.is_rate else ""]
        cells = [cell(values[name], row.is_rate) for name in TARGETS] + extra
        lines.append(f"{row.label:<22}" + "".join(f"{c:>11}" for c in cells))
    return lines


def memory_table(outcomes: dict[str, Outcome]) -> list[str]:
    def rss(name: str) -> str:
        mb = outcomes[name].peak_rss_mb
        return "n/a" if mb is None else f"{mb:.1f}"

    rss_row = ["-", rss("naive"), rss("iflow2api")]
    served = ["-", *(f"{outcomes[name].requests:,}" if outcomes[name].phases else "n/a" for name in PROXIES)]
    return [
        "Memory: peak RSS (VmHWM) at the end of the run",
        f"{'':<22}" + "".join(f"{c:>11}" for c in COLUMNS[:3]),
        f"{'peak RSS MB':<22}" + "".join(f"{c:>11}" for c in rss_row),
        f"{'requests served':<22}" + "".join(f"{c:>11}" for c in served),
    ]


@dataclass(frozen=True, slots=True)
class Check:
    target: str
    passed: bool | None  # None: could not be measured
    shown: str


def difference(outcomes: dict[str, Outcome], row: Row) -> float | None:
    ours, direct = row.value(outcomes["iflow2api"]), row.value(outcomes["direct"])
    return None if ours is None or direct is None else ours - direct


def under(value_us: float | None, limit_us: float) -> tuple[bool | None, str]:
    if value_us is None:
        return None, "n/a"
    return value_us < limit_us, f"{value_us / 1000:+.3f} ms"


def checks(outcomes: dict[str, Outcome], rss_requests: int) -> list[Check]:
    """The issue's targets for iflow2api; a target that could not be measured is neither met nor missed."""
    throughput = Row("", "http_c64", "rps")
    ours, naive = throughput.value(outcomes["iflow2api"]), throughput.value(outcomes["naive"])
    if ours is None or not naive:
        speedup: tuple[bool | None, str] = (None, "n/a")
    else:
        speedup = (ours >= 10 * naive, f"{ours / naive:.1f}x ({ours:,.0f} vs {naive:,.0f} req/s)")

    memory = outcomes["iflow2api"]
    served = count(memory.phases.get("memory", {}))
    if memory.peak_rss_mb is None:
        rss: tuple[bool | None, str] = (None, "n/a")
    else:
        enough = served >= rss_requests
        shown = f"{memory.peak_rss_mb:.1f} MB" + ("" if enough else f" (only {served:,} requests served)")
        rss = (memory.peak_rss_mb < 120 and enough, shown)

    return [
        Check("64-conn throughput >= 10x naive", *speedup),
        Check("added p50 latency, 1 conn < 1 ms", *under(difference(outcomes, HTTP_ROWS[1]), 1000)),
        Check("added chunk latency p99 < 1 ms", *under(difference(outcomes, STREAM_ROWS[3]), 1000)),
        Check("first chunk later than direct < 2 ms", *under(difference(outcomes, STREAM_ROWS[0]), 2000)),
        Check(f"peak RSS < 120 MB after {rss_requests:,} req", *rss),
    ]


def notes(outcomes: dict[str, Outcome]) -> list[str]:
    lines = []
    for name in TARGETS:
        outcome = outcomes[name]
        if outcome.error is not None:
            lines.append(f"{name}: not available: {outcome.error}")
        for phase, result in outcome.phases.items():
            if "error" in result:
                lines.append(f"{name} {phase}: failed: {result['error']}")
            elif result.get("errors"):
                lines.append(
                    f"{name} {phase}: {result['errors']} failed requests (non-2xx, reset or timeout)"
                )
            upstream_cpu = (result.get("cpu") or {}).get("upstream", 0.0)
            if name != "direct" and upstream_cpu > 0.5:
                lines.append(
                    f"{name} {phase}: upstream used {upstream_cpu:.0%} of a core; it may have held it back"
                )
            if result.get("unstamped_streams"):
                lines.append(
                    f"{name} {phase}: {result['unstamped_streams']} streams lost the upstream's stamps"
                )
    return lines


def render(outcomes: dict[str, Outcome], results: list[Check], heading: list[str], titles: list[str]) -> str:
    """The whole report: ``titles`` name the non-streaming and the streaming tables."""
    lines = [*heading, f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}"]
    lines += ["", *table(titles[0], HTTP_ROWS, outcomes)]
    lines += ["", *table(titles[1], STREAM_ROWS, outcomes)]
    lines += ["", *memory_table(outcomes), "", "Targets (iflow2api)"]
    for check in results:
        status = {True: "PASS", False: "FAIL", None: "N/A "}[check.passed]
        lines.append(f"  {status}  {check.target:<40} {check.shown}")
    extra = notes(outcomes)
    if extra:
        lines += ["", "Notes", *(f"  {line}" for line in extra)]
    return "\n".join(lines)


def write_json(
    path: Path, outcomes: dict[str, Outcome], results: list[Check], options: dict[str, Any]
) -> None:
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": options,
        "targets": {name: dataclasses.asdict(outcome) for name, outcome in outcomes.items()},
        "checks": [dataclasses.asdict(check) for check in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
