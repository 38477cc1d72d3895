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


@dataclass(slots=True)
class PathComparison:
    """The pool path against the core path (bench/pool_path.py); ``error`` says why it did not run."""

    error: str | None = None
    #: Per gateway: turns of ``requests`` requests after ``warmup`` requests.
    plan: dict[str, int] = field(default_factory=dict)
    #: The pool's accounts, and the conversations the requests rotate over (one per account).
    accounts: int = 0
    conversations: int = 0
    #: bench/loadgen.py turns' result for each gateway, plus ``cpu_us_per_request``.
    core: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: Every request the pool gateway was sent: the probe's, the warm-up and the measured ones.
    sent_to_pool: int | None = None
    #: The usage rows it had written once stopped, per account.
    usage_rows: dict[str, int] | None = None
    usage_error: str | None = None
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


POOL_TARGET = "pool routing + usage recording add < 0.5 ms p50"


def p50(result: dict[str, Any]) -> float | None:
    value = (result.get("latency_us") or {}).get("p50")
    return None if value is None else float(value)


def pool_check(comparison: PathComparison) -> Check:
    """Met when the pool path's p50 is under 0.5 ms above the core path's, and the pool gateway
    answered every request, recorded each of them, and spread them over all its accounts."""
    core, pool = p50(comparison.core), p50(comparison.pool)
    if comparison.error is not None or core is None or pool is None:
        return Check(POOL_TARGET, None, "n/a")
    passed, shown = under(pool - core, 500)
    shown += f" ({pool / 1000:.3f} vs {core / 1000:.3f} ms)"
    failed = int(comparison.core.get("errors", 0)) + int(comparison.pool.get("errors", 0))
    if failed:
        passed, shown = False, shown + f"; {failed:,} requests failed"
    rows = None if comparison.usage_rows is None else sum(comparison.usage_rows.values())
    if rows is None or rows != comparison.sent_to_pool:
        passed = False
        shown += (
            f"; usage rows {'n/a' if rows is None else f'{rows:,}'} != {comparison.sent_to_pool or 0:,} sent"
        )
    else:
        shown += f"; {rows:,} usage rows = requests sent"
    served = len(comparison.usage_rows or {})
    if rows is not None and served < comparison.accounts:
        # The config file's accounts were not used: that was not the pool path.
        passed, shown = False, shown + f"; only {served} of {comparison.accounts} accounts served"
    return Check(POOL_TARGET, passed, shown)


def _line(label: str, *cells: str) -> str:
    return f"{label:<22}" + "".join(f"{c:>11}" for c in cells)


def pool_table(comparison: PathComparison) -> list[str]:
    plan = comparison.plan
    lines = [
        f"Pool path vs core path: non-streaming, 1 connection, one request at a time, "
        f"{plan.get('turns', 0)} alternating turns of {plan.get('requests', 0):,} requests each "
        f"after {plan.get('warmup', 0):,} of warm-up",
        "  core: 1 account, no client keys, usage recording off",
        f"  pool: {comparison.accounts} accounts, round-robin + session affinity "
        f"({comparison.conversations} conversations), a named client key, usage recording on",
    ]
    if comparison.error is not None:
        return [*lines, "  not measured (see the notes)"]
    core, pool = comparison.core, comparison.pool
    lines.append(_line("", "core", "pool", "added ms"))
    for stat in ("p50", "p90", "p99"):
        ours, base = (pool.get("latency_us") or {}).get(stat), (core.get("latency_us") or {}).get(stat)
        added = "" if ours is None or base is None else f"{(ours - base) / 1000:+.3f}"
        lines.append(_line(f"{stat} ms", cell(base, False), cell(ours, False), added))
    base_cpu, our_cpu = core.get("cpu_us_per_request"), pool.get("cpu_us_per_request")
    if base_cpu is not None and our_cpu is not None:
        added = f"{(our_cpu - base_cpu) / 1000:+.3f}"
        lines.append(_line("CPU us per request", f"{base_cpu:.0f}", f"{our_cpu:.0f}", added))
    # Each turn's own difference: how far the p50 above can be trusted.
    pairs = zip(core.get("turn_p50_us") or [], pool.get("turn_p50_us") or [], strict=False)
    by_turn = sorted((ours - base) / 1000 for base, ours in pairs if base is not None and ours is not None)
    if by_turn:
        middle = by_turn[len(by_turn) // 2]
        spread = f"min {by_turn[0]:+.3f}, median {middle:+.3f}, max {by_turn[-1]:+.3f} ms"
        lines.append(f"{'added p50, by turn':<22} {spread}")
    lines.append(_line("requests measured", *(f"{int(r.get('requests', 0)):,}" for r in (core, pool))))
    if comparison.usage_rows is not None:
        rows = sum(comparison.usage_rows.values())
        sent = comparison.sent_to_pool or 0
        lines.append(_line("usage rows written", "-", f"{rows:,}") + f"  of {sent:,} requests sent to it")
    return lines


def pool_notes(comparison: PathComparison) -> list[str]:
    lines = []
    if comparison.error is not None:
        lines.append(f"pool path: not measured: {comparison.error}")
    if comparison.usage_error is not None:
        lines.append(f"pool path: usage rows not counted: {comparison.usage_error}")
    for name, result in (("core path", comparison.core), ("pool path", comparison.pool)):
        if result.get("errors"):
            lines.append(f"{name}: {result['errors']} failed requests (non-2xx, reset or timeout)")
    if comparison.usage_rows:
        spread = ", ".join(f"{account} {rows:,}" for account, rows in sorted(comparison.usage_rows.items()))
        lines.append(f"pool path: usage rows by account: {spread}")
    return lines


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


def render(
    outcomes: dict[str, Outcome] | None,
    comparison: PathComparison | None,
    results: list[Check],
    heading: list[str],
    titles: list[str],
    body_table: list[str] | None = None,
) -> str:
    """The whole report: ``titles`` name the non-streaming and the streaming tables. Either part may
    be missing (``--only``)."""
    lines = [*heading, f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}"]
    if outcomes is not None:
        lines += ["", *table(titles[0], HTTP_ROWS, outcomes)]
        lines += ["", *table(titles[1], STREAM_ROWS, outcomes)]
        lines += ["", *memory_table(outcomes)]
    if body_table is not None:
        lines += ["", *body_table]
    if comparison is not None:
        lines += ["", *pool_table(comparison)]
    lines += ["", "Targets (iflow2api)"]
    for check in results:
        status = {True: "PASS", False: "FAIL", None: "N/A "}[check.passed]
        lines.append(f"  {status}  {check.target:<46} {check.shown}")
    extra = (notes(outcomes) if outcomes is not None else []) + (
        pool_notes(comparison) if comparison is not None else []
    )
    if extra:
        lines += ["", "Notes", *(f"  {line}" for line in extra)]
    return "\n".join(lines)


def write_json(
    path: Path,
    outcomes: dict[str, Outcome] | None,
    comparison: PathComparison | None,
    results: list[Check],
    options: dict[str, Any],
    bodies: Any = None,
) -> None:
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": options,
        "targets": {name: dataclasses.asdict(outcome) for name, outcome in (outcomes or {}).items()},
        "pool_vs_core": None if comparison is None else dataclasses.asdict(comparison),
        "bodies": None if bodies is None else dataclasses.asdict(bodies),
        "checks": [dataclasses.asdict(check) for check in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
