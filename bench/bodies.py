"""Large request bodies: what a conversation of 2 KB to 1 MB costs each proxy, in CPU and latency.

Claude Code and Codex send the whole conversation on every turn. The same conversation, built here
like theirs (a system prompt, tool definitions, then turns of text, tool calls and long tool
results), goes at four sizes through ``/v1/chat/completions`` and ``/v1/messages``, to the upstream
directly, through the naive proxy and through iflow2api, at 1 and 8 connections. For each run:
p50/p99 latency, and the CPU time the proxy process used per request (``/proc/PID/stat`` before and
after). A least-squares line through the sizes gives each proxy's CPU per MB: what the body costs
on top of the request itself.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BENCH, CHAT_PATH, WRK_REPORT, run_json, say, wrk
from bench.servers import BenchError, Server, cpu_seconds

#: The sizes of the conversation, in bytes of JSON (each is reached to within one turn).
SIZES = (2_000, 100_000, 500_000, 1_000_000)
CONNECTIONS = (1, 8)
ROUTES = {"chat": CHAT_PATH, "messages": "/v1/messages"}
TARGETS = ("direct", "naive", "iflow2api")
#: Gateway CPU per MB at most this many times the naive proxy's (the issue's targets).
SLOPE_LIMITS = {"chat": 1.5, "messages": 2.0}
MODEL = "qwen3-coder-plus"

WRK_SCRIPT = (
    'wrk.method = "POST"\nlocal file = io.open("@FILE@", "rb")\nwrk.body = file:read("*a")\nfile:close()\n'
    + WRK_REPORT
)

_PROSE = (
    "the function returns a list of paths that match the pattern and skips hidden folders unless "
    "asked test fails because config value is read before the file exists so we move the check "
    "into setup and add a case for an empty directory error handling retry timeout request body "
    "parse stream chunk token usage account pool key model upstream gateway cache lock thread"
)
_WORDS = _PROSE.split(" ")
_TOOLS = [
    ("Read", "Read a file from the local filesystem.", {"file_path": "string", "offset": "integer"}),
    (
        "Edit",
        "Replace text in a file.",
        {"file_path": "string", "old_string": "string", "new_string": "string"},
    ),
    ("Bash", "Run a shell command and return its output.", {"command": "string", "timeout": "integer"}),
    ("Grep", "Search files for a regular expression.", {"pattern": "string", "path": "string"}),
]


def _text(rng: random.Random, words: int) -> str:
    lines = []
    while words > 0:
        n = min(words, rng.randint(6, 14))
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(n)))
        words -= n
    return "\n".join(lines)


def _schema(params: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind, "description": f"The {name}."} for name, kind in params.items()},
        "required": [next(iter(params))],
    }


@dataclass(slots=True)
class _Turn:
    """One round of the agent loop: an ask, a tool call, its (long) result, an answer."""

    ask: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    result: str
    answer: str


def _turns(seed: int) -> Callable[[], _Turn]:
    rng = random.Random(seed)
    counter = iter(range(1_000_000))

    def turn() -> _Turn:
        index = next(counter)
        tool, _, params = _TOOLS[index % len(_TOOLS)]
        return _Turn(
            ask=_text(rng, rng.randint(10, 40)),
            call_id=f"call_{index:06d}",
            tool=tool,
            arguments={name: _text(rng, 3) if kind == "string" else index for name, kind in params.items()},
            result=_text(rng, rng.randint(200, 900)),
            answer=_text(rng, rng.randint(20, 80)),
        )

    return turn


def _encode(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def chat_conversation(size: int, seed: int = 1) -> bytes:
    """A Chat Completions request of about ``size`` bytes, shaped like a coding agent's."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [{"role": "system", "content": _text(rng, 150)}]
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": n, "description": d, "parameters": _schema(p)}}
            for n, d, p in _TOOLS
        ],
        "max_tokens": 1024,
    }
    return _grown(request, size, seed, _chat_ask, _chat_rest)


def _chat_ask(t: _Turn) -> dict[str, Any]:
    return {"role": "user", "content": t.ask}


def _chat_rest(t: _Turn) -> list[dict[str, Any]]:
    call = {"name": t.tool, "arguments": _encode(t.arguments).decode()}
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": t.call_id, "type": "function", "function": call}],
        },
        {"role": "tool", "tool_call_id": t.call_id, "content": t.result},
        {"role": "assistant", "content": t.answer},
    ]


def messages_conversation(size: int, seed: int = 1) -> bytes:
    """The same conversation as an Anthropic Messages request (text, tool_use, tool_result blocks)."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "system": [{"type": "text", "text": _text(rng, 150)}],
        "tools": [{"name": n, "description": d, "input_schema": _schema(p)} for n, d, p in _TOOLS],
        "messages": messages,
    }
    return _grown(request, size, seed, _messages_ask, _messages_rest)


def _messages_ask(t: _Turn) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": t.ask}]}


def _messages_rest(t: _Turn) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": t.call_id, "name": t.tool, "input": t.arguments}
    result = {"type": "tool_result", "tool_use_id": t.call_id, "content": t.result}
    return [
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, call]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": [{"type": "text", "text": t.answer}]},
    ]


def _grown(
    request: dict[str, Any],
    size: int,
    seed: int,
    ask: Callable[[_Turn], dict[str, Any]],
    rest: Callable[[_Turn], list[dict[str, Any]]],
) -> bytes:
    """``request`` with turns added to its ``messages`` until it is ``size`` bytes; it ends on an ask."""
    messages: list[dict[str, Any]] = request["messages"]
    total = len(_encode(request))
    turn = _turns(seed)
    while True:
        t = turn()
        messages.append(ask(t))
        total += len(_encode(messages[-1])) + 1
        if total >= size:
            return _encode(request)
        added = rest(t)
        messages += added
        total += sum(len(_encode(message)) + 1 for message in added)


BUILDERS = {"chat": chat_conversation, "messages": messages_conversation}


@dataclass(frozen=True, slots=True)
class Plan:
    duration: float = 2.0
    warmup: float = 1.0
    use_wrk: bool = True


@dataclass(slots=True)
class BodyRuns:
    """Every run of the part: ``runs[route][connections][size][target]`` is one load's result,
    with ``cpu_ms_per_request`` of the server process added."""

    sizes: dict[str, dict[int, int]] = field(default_factory=dict)
    runs: dict[str, dict[int, dict[int, dict[str, dict[str, Any]]]]] = field(default_factory=dict)
    error: str | None = None


def _load(url: str, path: Path, script: Path, connections: int, seconds: float, plan: Plan) -> dict[str, Any]:
    if plan.use_wrk:
        return wrk(url, connections, seconds, script, timeout="10s")
    argv = [sys.executable, str(BENCH / "loadgen.py"), "http", "--url", url, "--body-file", str(path)]
    argv += ["--connections", str(connections), "--duration", str(seconds)]
    result: dict[str, Any] = run_json(argv, timeout=seconds + 30)
    return result


def measure(servers: dict[str, Server], workdir: Path, plan: Plan) -> BodyRuns:
    """Each size against each target in turn, so that the machine's drift falls on all alike."""
    result = BodyRuns()
    for route, builder in BUILDERS.items():
        result.sizes[route] = {}
        result.runs[route] = {c: {} for c in CONNECTIONS}
        for size in SIZES:
            body = builder(size)
            result.sizes[route][size] = len(body)
            path = workdir / f"body-{route}-{size}.json"
            path.write_bytes(body)
            script = workdir / f"body-{route}-{size}.lua"
            script.write_text(WRK_SCRIPT.replace("@FILE@", str(path)))
            for connections in CONNECTIONS:
                row = result.runs[route][connections].setdefault(size, {})
                for name in TARGETS:
                    if name not in servers:
                        continue
                    url = servers[name].url + ROUTES[route]
                    pid = servers[name].process.pid
                    try:
                        if plan.warmup > 0 and name != "direct":  # the upstream needs none
                            _load(url, path, script, connections, plan.warmup, plan)
                        before = cpu_seconds(pid)
                        run = _load(url, path, script, connections, plan.duration, plan)
                        used = cpu_seconds(pid) - before
                    except BenchError as exc:
                        run = {"error": str(exc)}
                    else:
                        run["cpu_ms_per_request"] = used * 1000 / run["requests"] if run["requests"] else None
                    row[name] = run
                    shown = f"{len(body) / 1000:>6.0f} KB c{connections} {name:<9}"
                    say(f"  bodies {route:<8} {shown} {_said(run)}")
    return result


def _said(run: dict[str, Any]) -> str:
    if "error" in run:
        return "error: " + str(run["error"]).splitlines()[0]
    cpu = run.get("cpu_ms_per_request")
    errors = f", {run['errors']} errors" if run.get("errors") else ""
    return (
        f"{run['rps']:,.0f} req/s, p50 {run['latency_us']['p50'] / 1000:.2f} ms, "
        f"CPU {cpu if cpu is None else f'{cpu:.2f}'} ms/req{errors}"
    )


def slope(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of y over x.

    >>> slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)])
    2.0
    """
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def cpu_per_mb(runs: BodyRuns, route: str, connections: int, target: str) -> float | None:
    """CPU ms per MB of body: the slope of CPU per request over the body's size."""
    points = []
    for size, row in runs.runs.get(route, {}).get(connections, {}).items():
        cpu = row.get(target, {}).get("cpu_ms_per_request")
        if cpu is not None:
            points.append((runs.sizes[route][size] / 1e6, float(cpu)))
    return slope(points) if len(points) == len(SIZES) else None


def table(runs: BodyRuns) -> list[str]:
    lines = [
        "Large bodies: latency p50/p99 (ms) and the proxy's CPU per request (ms); "
        "wrk -t1" + ("" if runs.runs else " (not run)"),
        f"  {'route':<9}{'size':>8} {'conn':>4}  {'direct p50':>10}  {'naive p50/p99':>14}  "
        f"{'iflow2api p50/p99':>18}  {'CPU naive':>9}  {'CPU iflow2api':>13}",
    ]
    for route, by_connections in runs.runs.items():
        for connections, by_size in by_connections.items():
            for size, row in by_size.items():
                lines.append(
                    f"  {route:<9}{runs.sizes[route][size] / 1000:>6.0f}KB {'c' + str(connections):>4}  "
                    f"{_p(row.get('direct'), 'p50'):>10}  "
                    f"{_p(row.get('naive'), 'p50') + '/' + _p(row.get('naive'), 'p99'):>14}  "
                    f"{_p(row.get('iflow2api'), 'p50') + '/' + _p(row.get('iflow2api'), 'p99'):>18}  "
                    f"{_cpu(row.get('naive')):>9}  {_cpu(row.get('iflow2api')):>13}"
                )
            naive = cpu_per_mb(runs, route, connections, "naive")
            ours = cpu_per_mb(runs, route, connections, "iflow2api")
            lines.append(
                f"  {route:<9}{'per MB':>8} {'c' + str(connections):>4}  {'':>10}  {'':>14}  {'':>18}  "
                f"{_num(naive):>9}  {_num(ours):>13}"
            )
    return lines


def _p(run: dict[str, Any] | None, key: str) -> str:
    if not run or "latency_us" not in run:
        return "-"
    return f"{run['latency_us'][key] / 1000:.2f}"


def _cpu(run: dict[str, Any] | None) -> str:
    return _num(None if not run else run.get("cpu_ms_per_request"))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def checks(runs: BodyRuns) -> list[tuple[str, bool | None, str]]:
    """Per route: the gateway's CPU per MB against the naive proxy's, at each connection count."""
    results: list[tuple[str, bool | None, str]] = []
    for route, limit in SLOPE_LIMITS.items():
        shown, passed = [], True
        for connections in CONNECTIONS:
            naive = cpu_per_mb(runs, route, connections, "naive")
            ours = cpu_per_mb(runs, route, connections, "iflow2api")
            if naive is None or ours is None or naive <= 0:
                results.append((f"{route} CPU per MB <= {limit:g}x naive", None, "n/a"))
                break
            passed = passed and ours <= limit * naive
            shown.append(f"c{connections} {ours / naive:.2f}x ({ours:.2f} vs {naive:.2f} ms/MB)")
        else:
            results.append((f"{route} CPU per MB <= {limit:g}x naive", passed, ", ".join(shown)))
    return results
