"""What the parts of the benchmark share: the request they send, how the gateway under test is
configured and started, the probe that checks a server's answers before it is measured, and how a
client tool (wrk, bench/loadgen.py) is run and its JSON read back.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.servers import BenchError

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CHAT_PATH = "/v1/chat/completions"
API_KEY = "sk-0123456789abcdef0123456789abcdef"
#: What clients send when the gateway has no client keys (it then checks none).
ANY_KEY = "sk-bench"
GATEWAY_CMD = "{python} -m iflow2api serve --host 127.0.0.1 --port {port}"

# A request of a realistic size: a system prompt and a short user turn (about 700 bytes).
BODY: dict[str, Any] = {
    "model": "qwen3-coder-plus",
    "messages": [
        {
            "role": "system",
            "content": "You are a careful senior engineer. Answer briefly, show code when it helps, "
            "and say so when you are not sure. " * 4,
        },
        {"role": "user", "content": "Write a Python function that reverses a linked list, with a test."},
    ],
    "temperature": 0.7,
    "max_tokens": 512,
}


def body(stream: bool, request: dict[str, Any] = BODY) -> str:
    return json.dumps({**request, "stream": True} if stream else request, separators=(",", ":"))


def base_env() -> dict[str, str]:
    # Nothing from the caller's iflow2api / iFlow settings may leak into the servers under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return env


def gateway_env(workdir: Path, upstream_url: str) -> dict[str, str]:
    """One iFlow account (a throwaway ``IFLOW_HOME`` whose settings.json points at the upstream),
    a data folder of its own and no per-account concurrency limit."""
    home = workdir / "iflow-home"
    home.mkdir()
    settings = {"selectedAuthType": "iflow", "apiKey": API_KEY, "baseUrl": upstream_url + "/v1"}
    (home / "settings.json").write_text(json.dumps(settings))
    (workdir / "data").mkdir()
    env = base_env()
    env.update(
        IFLOW_HOME=str(home),
        IFLOW2API_DATA_DIR=str(workdir / "data"),
        IFLOW2API_CONCURRENCY="0",
        IFLOW2API_LOG_LEVEL="warning",
    )
    return env


def gateway_argv(template: str, port: int, upstream_url: str) -> list[str]:
    values = {
        "python": sys.executable,
        "port": str(port),
        "upstream": upstream_url + "/v1",
        "bench": str(BENCH),
    }
    return [part.format(**values) for part in shlex.split(template)]


#: Requests ``probe`` sends: a gateway that records usage records these too.
PROBE_REQUESTS = 2


def probe(url: str, key: str = ANY_KEY) -> str | None:
    """One plain and one streamed request; returns what is wrong with the answers, or None."""
    for stream in (False, True):
        request = urllib.request.Request(
            url + CHAT_PATH,
            data=body(stream).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
        )
        kind = "streamed" if stream else "plain"
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            return f"{kind} request: HTTP {exc.code}: {detail}"
        except OSError as exc:
            return f"{kind} request: {exc}"
        expected = '"content":' if stream else '"choices"'
        if expected not in text.replace('"content": ', '"content":'):
            return f"{kind} request: unexpected answer: {text[:300]}"
    return None


def run_json(argv: list[str], timeout: float, marker: str = "") -> Any:
    """Run a client tool to the end and parse the last line of its output that holds JSON."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith((marker + "{", marker + "[")):
            return json.loads(line[len(marker) :])
    raise BenchError(f"{Path(argv[0]).name} exited with {done.returncode}: {done.stderr.strip()[-500:]}")


#: The end of every wrk script: the headers, and a report line with the numbers, for ``wrk``.
WRK_REPORT = """\
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCH {"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk(url: str, connections: int, duration: float, script: Path, timeout: str = "5s") -> dict[str, Any]:
    """One wrk run of ``script`` (which ends with ``WRK_REPORT``) over whole seconds."""
    seconds = max(1, round(duration))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", timeout, "-s", str(script)]
    raw: dict[str, Any] = run_json([*argv, url], timeout=seconds + 30, marker="BENCH ")
    elapsed = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"],
        "seconds": elapsed,
        "rps": raw["requests"] / elapsed if elapsed else 0.0,
        "latency_us": {"n": raw["requests"], **{k: float(raw[k]) for k in ("p50", "p90", "p99", "max")}},
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.3f}"
