"""The pool path against the core path: what the account pool, a named client key and usage
recording add to one request.

Two gateways of the same build, both in front of the fast upstream:

- core path: one account (the iFlow settings.json), no client keys, usage recording off;
- pool path: three accounts (settings.json plus two config-file accounts on the same upstream, none
  with a concurrency limit), round-robin with session affinity, a named client key created with
  ``iflow2api keys create`` and sent as Bearer, usage recording on.

One client, one connection, one request at a time: ``bench/loadgen.py turns`` takes the two in
alternating turns after a warm-up, so that whatever else the machine does falls on both alike. The
requests rotate over three conversations, so affinity gives each its own account and all three
accounts serve. Then the pool gateway is stopped, which writes the usage it still holds, and its
usage table is counted: a gateway that dropped part of its records would have been measured doing
less than its job, so the row count must equal the requests it was sent.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    ANY_KEY,
    BENCH,
    BODY,
    CHAT_PATH,
    PROBE_REQUESTS,
    ROOT,
    body,
    gateway_argv,
    gateway_env,
    probe,
    run_json,
)
from bench.report import PathComparison
from bench.servers import BenchError, Server, cpu_seconds, free_port, start, stop

KEY_NAME = "bench"
ACCOUNTS = 3  # settings.json and the two in CONFIG
CONVERSATIONS = ACCOUNTS
STATE_FILE = "state.sqlite3"
_CREATED_KEY = re.compile(r"\bsk-i2a-[A-Za-z0-9_-]{16,}")

#: The pool's two extra accounts, beside the iFlow settings.json one: same kind, same upstream.
CONFIG = """\
[[accounts]]
label = "bench-2"
kind = "iflow-key"
base_url = "{base_url}"
api_key = "sk-0123456789abcdef0123456789abcde2"
concurrency = 0

[[accounts]]
label = "bench-3"
kind = "iflow-key"
base_url = "{base_url}"
api_key = "sk-0123456789abcdef0123456789abcde3"
concurrency = 0
"""


@dataclass(frozen=True, slots=True)
class Plan:
    """Per gateway: ``turns`` turns of ``requests`` requests, after ``warmup`` requests not counted."""

    requests: int
    turns: int
    warmup: int


def conversations(count: int) -> list[str]:
    """Request bodies of the same size that open ``count`` different conversations."""
    bodies = []
    for number in range(1, count + 1):
        system, user = BODY["messages"]
        turn = {**user, "content": f"{user['content']} (conversation {number})"}
        bodies.append(body(False, {**BODY, "messages": [system, turn]}))
    return bodies


def create_key(env: dict[str, str], data_dir: Path) -> str:
    """A named client key, made the way a user makes one; returns the key the command printed."""
    argv = [sys.executable, "-m", "iflow2api", "keys", "create", KEY_NAME, "--data-dir", str(data_dir)]
    try:
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError("`iflow2api keys create` did not finish within 60 s") from None
    found = _CREATED_KEY.search(done.stdout)
    if done.returncode != 0 or found is None:
        output = (done.stdout + done.stderr).strip()[-500:]
        raise BenchError(f"`iflow2api keys create` exited with {done.returncode}: {output}")
    return found.group(0)


def usage_by_account(data_dir: Path) -> dict[str, int]:
    """The usage rows a stopped gateway left in its state file, counted per account."""
    path = data_dir / STATE_FILE
    if not path.is_file():
        raise BenchError(f"the pool gateway left no {STATE_FILE} in {data_dir}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT coalesce(account, '(none)'), count(*) FROM usage GROUP BY 1").fetchall()
    except sqlite3.Error as exc:
        raise BenchError(f"cannot count the usage rows in {path}: {exc}") from None
    return {str(account): int(number) for account, number in rows}


def turns(urls_and_keys: list[tuple[str, str]], plan: Plan) -> list[dict[str, Any]]:
    argv = [sys.executable, str(BENCH / "loadgen.py"), "turns"]
    for url, key in urls_and_keys:
        argv += ["--url", url + CHAT_PATH, "--key", key]
    for text in conversations(CONVERSATIONS):
        argv += ["--body", text]
    argv += ["--requests", str(plan.requests), "--turns", str(plan.turns)]
    argv += ["--warmup-requests", str(plan.warmup)]
    # 20 ms a request would be 40x slow: past that, something is stuck.
    total = len(urls_and_keys) * (plan.warmup + plan.turns * plan.requests)
    results: list[dict[str, Any]] = run_json(argv, timeout=60 + total * 0.02)
    return results


def start_checked(
    name: str, argv: list[str], port: int, env: dict[str, str], workdir: Path, key: str
) -> Server:
    server = start(name, argv, port, env, workdir)
    problem = probe(server.url, key)
    if problem is not None:
        stop(server)
        raise BenchError(f"{name} answers wrongly: {problem}\n{server.log_tail()}".strip())
    return server


def compare(workdir: Path, upstream_url: str, gateway_cmd: str, plan: Plan) -> PathComparison:
    """Start both gateways, measure them in turns, stop them and count the pool's usage rows."""
    comparison = PathComparison(
        plan={"requests": plan.requests, "turns": plan.turns, "warmup": plan.warmup},
        accounts=ACCOUNTS,
        conversations=CONVERSATIONS,
    )
    core_dir, pool_dir = workdir / "core-path", workdir / "pool-path"
    core_dir.mkdir()
    pool_dir.mkdir()
    core_env = gateway_env(core_dir, upstream_url)
    core_env["IFLOW2API_RECORD_USAGE"] = "false"
    pool_env = gateway_env(pool_dir, upstream_url)
    (pool_dir / "config.toml").write_text(CONFIG.format(base_url=upstream_url + "/v1"))
    pool_env.update(
        IFLOW2API_CONFIG=str(pool_dir / "config.toml"),
        IFLOW2API_STRATEGY="round-robin",
        IFLOW2API_SESSION_AFFINITY="true",
        IFLOW2API_RECORD_USAGE="true",
    )
    servers: dict[str, Server] = {}
    try:
        key = create_key(pool_env, pool_dir / "data")
        for name, env, sent_key in (("core-path", core_env, ANY_KEY), ("pool-path", pool_env, key)):
            port = free_port()
            argv = gateway_argv(gateway_cmd, port, upstream_url)
            servers[name] = start_checked(name, argv, port, env, workdir, sent_key)
        core, pool = servers["core-path"], servers["pool-path"]
        cpu_before = [cpu_seconds(core.process.pid), cpu_seconds(pool.process.pid)]
        started = time.monotonic()
        comparison.core, comparison.pool = turns([(core.url, ANY_KEY), (pool.url, key)], plan)
        comparison.seconds = time.monotonic() - started
        for result, server, before in zip(
            (comparison.core, comparison.pool), (core, pool), cpu_before, strict=True
        ):
            # CPU time per request sent, background work included (the pool's usage writer).
            used = cpu_seconds(server.process.pid) - before
            result["cpu_us_per_request"] = used * 1e6 / result["sent"] if result["sent"] else None
        stop(pool)  # it writes the usage it still holds on the way out
        comparison.sent_to_pool = PROBE_REQUESTS + int(comparison.pool["sent"])
        try:
            comparison.usage_rows = usage_by_account(pool_dir / "data")
        except BenchError as exc:  # measured, but its records cannot be read: the target fails
            comparison.usage_error = str(exc)
    except BenchError as exc:
        comparison.error = str(exc)
    finally:
        for server in servers.values():
            stop(server)
        if "pool-path" in servers:
            comparison.log_tail = servers["pool-path"].log_tail(20)
    return comparison
