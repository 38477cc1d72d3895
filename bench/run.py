"""How much iflow2api adds on top of a fast upstream: one command, about five minutes.

    python bench/run.py [--json results.json] [--check]

It starts, each in its own process on 127.0.0.1, bench/fast_upstream.py, bench/naive_proxy.py (the
floor) and iflow2api pointed at the upstream with no per-account concurrency limit. Then, against
the upstream directly, through the naive proxy and through iflow2api, one after the other:

- non-streaming requests/s and p50/p99 latency with 1 and 64 connections (wrk when installed,
  else bench/loadgen.py);
- one client streaming: time to the first chunk, each chunk's latency (upstream write to client
  read, from the stamp the upstream puts in each chunk) and the gap between chunks, taking the
  three targets in 1-second turns so that background noise falls on all of them alike;
- the proxies' peak RSS (VmHWM) after a further 10,000 requests;
- then the pool path against the core path (bench/pool_path.py): two more gateways of the same
  build, one with a single account and nothing else, one with three accounts, session affinity, a
  client key and usage recording, one request at a time in alternating turns; then the usage rows
  the second wrote, which must equal the requests it was sent.

- large bodies (bench/bodies.py): conversations of about 2 KB to 1 MB through /v1/chat/completions
  and /v1/messages, direct, naive and iflow2api, at 1 and 8 connections; latency and each proxy's
  CPU per request, and from those its CPU per MB of body.

- the profile step (bench/profiles.py): what each provider profile's ``prepare`` adds to a request
  over the generic profile's, in this process.

- the lease round trip (bench/leases.py): a gateway with ``redis_url`` (every request takes and
  gives back an account's lease in a private redis-server) against one without, one request at a
  time in alternating turns (the pool part's plan), and the round trip alone in this process.

``--only core`` runs the first part, ``--only bodies`` the large bodies, ``--only pool`` the pool
part, ``--only profiles`` the profile step, ``--only leases`` the lease round trip. It prints the
tables and the targets, and exits 0 even
when a target is missed (it is a measurement) unless ``--check`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in {None, ""}:
    # `python bench/run.py` puts bench/ itself on sys.path; the package lives one level up.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bodies, leases, pool_path, profiles, report
from bench.harness import (
    BENCH,
    CHAT_PATH,
    GATEWAY_CMD,
    WRK_REPORT,
    base_env,
    body,
    gateway_argv,
    gateway_env,
    ms,
    probe,
    run_json,
    say,
    wrk,
)
from bench.report import PROXIES, TARGETS, Check, Outcome, PathComparison, count
from bench.servers import BenchError, Server, cpu_seconds, free_port, peak_rss_mb, start, stop

PARTS = ("core", "bodies", "pool", "profiles", "leases")

WRK_SCRIPT = 'wrk.method = "POST"\nwrk.body = [==[@BODY@]==]\n' + WRK_REPORT


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    warmup: float
    warmup_64: float
    stream_duration: float
    chunks: int
    interval_ms: float
    rss_requests: int
    memory_seconds: float
    use_wrk: bool
    gateway_cmd: str
    json_path: Path | None
    check: bool
    parts: tuple[str, ...]
    pool_plan: pool_path.Plan
    bodies_plan: bodies.Plan


# --- load -----------------------------------------------------------------------------------------


def loadgen(url: str, connections: int, duration: float, max_requests: int = 0) -> dict[str, Any]:
    options = {"connections": connections, "duration": duration, "max-requests": max_requests}
    argv = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        "http",
        "--url",
        url + CHAT_PATH,
        "--body",
        body(False),
    ]
    argv += [arg for name, value in options.items() for arg in (f"--{name}", str(value))]
    result: dict[str, Any] = run_json(argv, timeout=duration + 30)
    return result


def stream_loadgen(urls: list[str], opts: Options) -> list[dict[str, Any]]:
    # One process goes round every target, so background noise is shared rather than pinned on one.
    rounds = max(1, round(opts.stream_duration))
    argv = [sys.executable, str(BENCH / "loadgen.py"), "stream", "--body", body(True)]
    argv += [arg for url in urls for arg in ("--url", url + CHAT_PATH)]
    argv += ["--duration", str(opts.stream_duration), "--rounds", str(rounds), "--warmup", str(opts.warmup)]
    seconds = len(urls) * (opts.stream_duration + opts.warmup)
    results: list[dict[str, Any]] = run_json(argv, timeout=seconds + 30)
    return results


def summary(result: dict[str, Any]) -> str:
    if "error" in result:
        return "error: " + str(result["error"]).splitlines()[0]
    errors = f", {result['errors']} errors" if result.get("errors") else ""
    cpu = result.get("cpu")
    load = f", CPU: server {cpu['server']:.0%}, upstream {cpu['upstream']:.0%}" if cpu else ""
    if "rps" in result:
        return f"{result['rps']:,.0f} req/s, p50 {ms(result['latency_us']['p50'])} ms{errors}{load}"
    first = result.get("first_chunk_us") or {}
    return f"{result['streams']} streams, first chunk p50 {ms(first.get('p50'))} ms{errors}"


def proxy_specs(
    opts: Options, workdir: Path, upstream_url: str
) -> dict[str, tuple[list[str], int, dict[str, str]]]:
    naive_port, gateway_port = free_port(), free_port()
    naive_argv = [sys.executable, str(BENCH / "naive_proxy.py"), "--port", str(naive_port)]
    return {
        "naive": ([*naive_argv, "--upstream", upstream_url + "/v1"], naive_port, base_env()),
        "iflow2api": (
            gateway_argv(opts.gateway_cmd, gateway_port, upstream_url),
            gateway_port,
            gateway_env(workdir, upstream_url),
        ),
    }


def start_upstream(opts: Options, workdir: Path, stack: contextlib.ExitStack) -> Server:
    port = free_port()
    argv = [sys.executable, str(BENCH / "fast_upstream.py"), "--port", str(port)]
    argv += ["--chunks", str(opts.chunks), "--interval-ms", str(opts.interval_ms)]
    upstream = start("upstream", argv, port, base_env(), workdir)
    stack.callback(stop, upstream)
    problem = probe(upstream.url)
    if problem is not None:
        raise BenchError(f"the fake upstream answers wrongly: {problem}")
    return upstream


def start_servers(
    opts: Options, workdir: Path, upstream: Server, stack: contextlib.ExitStack, outcomes: dict[str, Outcome]
) -> dict[str, Server]:
    """Start what answers correctly; a proxy that does not is marked not available, which is no failure."""
    servers = {"direct": upstream}

    for name, (proxy_argv, proxy_port, env) in proxy_specs(opts, workdir, upstream.url).items():
        try:
            server = start(name, proxy_argv, proxy_port, env, workdir)
        except BenchError as exc:
            outcomes[name].error = f"did not start: {exc}"
            continue
        stack.callback(stop, server)
        problem = probe(server.url)
        if problem is not None:
            outcomes[name].error = f"answers wrongly: {problem}\n{server.log_tail()}".strip()
            stop(server)  # give its CPU back to the others
            continue
        servers[name] = server
        say(f"  started {name} (pid {server.process.pid}) at {server.url}")
    return servers


def measure(
    servers: dict[str, Server],
    outcomes: dict[str, Outcome],
    phase: str,
    load: Callable[[str, float], dict[str, Any]],
    warmup: float,
    duration: float,
) -> None:
    """Run one phase against every available target in turn, after a warm-up that is thrown away."""
    for name in TARGETS:
        if name not in servers:
            continue
        outcome, url = outcomes[name], servers[name].url
        pids = {"server": servers[name].process.pid, "upstream": servers["direct"].process.pid}
        try:
            if warmup > 0:
                outcome.requests += count(load(url, warmup))
            cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
            started = time.monotonic()
            result = load(url, duration)
            elapsed = time.monotonic() - started
            # Share of one core each used: shows who the bottleneck was, the upstream never should be.
            result["cpu"] = {
                role: (cpu_seconds(pid) - cpu_before[role]) / elapsed for role, pid in pids.items()
            }
        except BenchError as exc:
            result = {"error": str(exc)}
        outcome.requests += count(result)
        outcome.phases[phase] = result
        say(f"  {phase:<9} {name:<9}  {summary(result)}")


def measure_memory(servers: dict[str, Server], outcomes: dict[str, Outcome], opts: Options) -> None:
    """A fixed number of requests at 64 connections, then the proxy's lifetime peak RSS."""
    for name in PROXIES:
        if name not in servers:
            continue
        outcome, server = outcomes[name], servers[name]
        try:
            # Capped in time so a slow proxy cannot stretch the run; the row says how many it served.
            result = loadgen(server.url, 64, opts.memory_seconds, max_requests=opts.rss_requests)
        except BenchError as exc:
            result = {"error": str(exc)}
        outcome.requests += count(result)
        outcome.phases["memory"] = result
        outcome.peak_rss_mb = peak_rss_mb(server.process.pid)
        say(f"  memory    {name:<9}  {summary(result)}, peak RSS {outcome.peak_rss_mb or 0:.1f} MB")


def http_loader(opts: Options, connections: int, script: Path) -> Callable[[str, float], dict[str, Any]]:
    def load(url: str, seconds: float) -> dict[str, Any]:
        if opts.use_wrk:
            return wrk(url + CHAT_PATH, connections, seconds, script)
        return loadgen(url, connections, seconds)

    return load


def measure_streams(servers: dict[str, Server], outcomes: dict[str, Outcome], opts: Options) -> None:
    names = [name for name in TARGETS if name in servers]
    try:
        results = stream_loadgen([servers[name].url for name in names], opts)
    except BenchError as exc:
        results = [{"error": str(exc)} for _ in names]
    for name, result in zip(names, results, strict=True):
        outcomes[name].requests += count(result)
        outcomes[name].phases["stream_c1"] = result
        say(f"  stream_c1 {name:<9}  {summary(result)}")


def measure_core(
    opts: Options, workdir: Path, upstream: Server, stack: contextlib.ExitStack
) -> dict[str, Outcome]:
    """Direct, the naive proxy and iflow2api: throughput, latency, streaming and memory."""
    outcomes = {name: Outcome() for name in TARGETS}
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.replace("@BODY@", body(stream=False)))
    servers = start_servers(opts, workdir, upstream, stack, outcomes)
    for connections, warmup in ((1, opts.warmup), (64, opts.warmup_64)):
        load = http_loader(opts, connections, script)
        measure(servers, outcomes, f"http_c{connections}", load, warmup, opts.duration)
    measure_streams(servers, outcomes, opts)
    measure_memory(servers, outcomes, opts)
    for name, server in servers.items():
        outcomes[name].log_tail = server.log_tail(20)  # the logs go with the temporary folder
        if name != "direct":
            stop(server)  # their work is done: the pool part gets the machine to itself
    return outcomes


def measure_pool(opts: Options, workdir: Path, upstream: Server) -> PathComparison:
    plan = opts.pool_plan
    say(
        f"  pool path vs core path: {plan.turns} turns of {plan.requests:,} requests each, "
        f"after {plan.warmup:,} of warm-up"
    )
    comparison = pool_path.compare(workdir, upstream.url, opts.gateway_cmd, plan)
    if comparison.error is not None:
        say(f"  pool path: error: {comparison.error.splitlines()[0]}")
    for name, result in (("core", comparison.core), ("pool", comparison.pool)):
        if result:
            cpu = result.get("cpu_us_per_request")
            shown = "" if cpu is None else f", {cpu:.0f} us CPU per request"
            say(f"  {name} path  p50 {ms((result.get('latency_us') or {}).get('p50'))} ms{shown}")
    if comparison.usage_rows is not None:
        rows = sum(comparison.usage_rows.values())
        say(f"  pool path  {rows:,} usage rows for {comparison.sent_to_pool or 0:,} requests sent")
    return comparison


def measure_bodies(
    opts: Options, workdir: Path, upstream: Server, stack: contextlib.ExitStack
) -> bodies.BodyRuns:
    """The naive proxy and a fresh gateway, each sent conversations of growing size."""
    workdir = workdir / "bodies"
    workdir.mkdir()
    outcomes = {name: Outcome() for name in TARGETS}
    servers = start_servers(opts, workdir, upstream, stack, outcomes)
    try:
        runs = bodies.measure(servers, workdir, opts.bodies_plan)
    finally:
        for name, server in servers.items():
            if name != "direct":
                stop(server)
    failed = [f"{name} {outcome.error}" for name, outcome in outcomes.items() if outcome.error]
    runs.error = "; ".join(failed) or None
    return runs


Results = tuple[
    dict[str, Outcome] | None, bodies.BodyRuns | None, PathComparison | None, leases.LeaseComparison | None
]


def measure_leases(opts: Options, workdir: Path, upstream: Server) -> leases.LeaseComparison:
    plan = opts.pool_plan
    say(f"  lease round trip: {plan.turns} turns of {plan.requests:,} requests each, single vs redis_url")
    comparison = leases.compare(workdir, upstream.url, opts.gateway_cmd, plan)
    if comparison.error is not None:
        say(f"  lease round trip: error: {comparison.error.splitlines()[0]}")
    return comparison


def bench(opts: Options) -> Results:
    outcomes, body_runs, comparison, lease_comparison = None, None, None, None
    with tempfile.TemporaryDirectory(prefix="iflow2api-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        upstream = start_upstream(opts, workdir, stack)
        if "core" in opts.parts:
            outcomes = measure_core(opts, workdir, upstream, stack)
        if "bodies" in opts.parts:
            body_runs = measure_bodies(opts, workdir, upstream, stack)
        if "pool" in opts.parts:
            comparison = measure_pool(opts, workdir, upstream)
        if "leases" in opts.parts:
            lease_comparison = measure_leases(opts, workdir, upstream)
    return outcomes, body_runs, comparison, lease_comparison


# --- the command ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per non-streaming run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run")
    # The naive proxy runs at ~60% of its pace for its first 5 s at 64 connections (httpx's pool
    # settling); a shorter warm-up makes the floor, and so the 10x target, swing by 2x between runs.
    parser.add_argument("--warmup-64", type=float, default=6.0, help="the same, at 64 connections")
    parser.add_argument("--stream-duration", type=float, default=6.0, help="seconds of streaming per target")
    parser.add_argument("--chunks", type=int, default=10, help="content chunks per stream")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="gap between upstream chunks")
    parser.add_argument("--rss-requests", type=int, default=10_000, help="requests before reading peak RSS")
    parser.add_argument("--memory-seconds", type=float, default=30.0, help="time cap on those requests")
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="non-streaming load: wrk (apt-get install wrk), bench/loadgen.py, or wrk when installed",
    )
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="core: direct, naive and iflow2api; bodies: large request bodies; pool: the pool path vs "
        "the core path; profiles: what each provider profile adds to a request (in this process); "
        "leases: what taking an account's lease in Redis adds to a request (the pool part's plan)",
    )
    parser.add_argument("--bodies-duration", type=float, default=2.0, help="bodies: seconds per run")
    parser.add_argument("--bodies-warmup", type=float, default=1.0, help="bodies: warm-up seconds per run")
    parser.add_argument("--pool-requests", type=int, default=1500, help="pool part: requests per turn")
    parser.add_argument("--pool-turns", type=int, default=10, help="pool part: turns per gateway")
    parser.add_argument(
        "--pool-warmup", type=int, default=1000, help="pool part: warm-up requests per gateway"
    )
    parser.add_argument(
        "--gateway-cmd",
        default=GATEWAY_CMD,
        help="how to start the server under test; {python} {port} {upstream} {bench} are filled in",
    )
    args = parser.parse_args(argv)
    if args.loadgen == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk), or use --loadgen python")
    return Options(
        duration=args.duration,
        warmup=args.warmup,
        warmup_64=args.warmup_64,
        stream_duration=args.stream_duration,
        chunks=args.chunks,
        interval_ms=args.interval_ms,
        rss_requests=args.rss_requests,
        memory_seconds=args.memory_seconds,
        use_wrk=args.loadgen != "python" and shutil.which("wrk") is not None,
        gateway_cmd=args.gateway_cmd,
        json_path=args.json,
        check=args.check,
        parts=(args.only,) if args.only else PARTS,
        pool_plan=pool_path.Plan(
            requests=max(1, args.pool_requests),
            turns=max(1, args.pool_turns),
            warmup=max(0, args.pool_warmup),
        ),
        bodies_plan=bodies.Plan(
            duration=max(1.0, args.bodies_duration),
            warmup=max(0.0, args.bodies_warmup),
            use_wrk=args.loadgen != "python" and shutil.which("wrk") is not None,
        ),
    )


def titles(opts: Options) -> list[str]:
    tool = "wrk -t1" if opts.use_wrk else "bench/loadgen.py"
    return [
        f"Non-streaming POST {CHAT_PATH} ({tool}, {opts.duration:g} s each after a warm-up "
        f"of {opts.warmup:g} s at 1 conn, {opts.warmup_64:g} s at 64)",
        f"Streaming, 1 client, {opts.chunks} chunks {opts.interval_ms:g} ms apart "
        f"({opts.stream_duration:g} s each, in 1 s turns); latency = upstream write to client read",
    ]


def exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGHUP into an exception so the `finally` blocks stop every server.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    started = time.monotonic()
    try:
        outcomes, body_runs, comparison, lease_comparison = bench(opts)
    except KeyboardInterrupt:
        say("interrupted; every server was stopped")
        return 130
    except BenchError as exc:
        say(f"the benchmark could not run: {exc}")
        return 2
    results = [] if outcomes is None else report.checks(outcomes, opts.rss_requests)
    if body_runs is not None:
        results += [Check(*check) for check in bodies.checks(body_runs)]
    if comparison is not None:
        results.append(report.pool_check(comparison))
    if lease_comparison is not None:
        results += [Check(*check) for check in leases.checks(lease_comparison)]
    profile_times = profiles.measure() if "profiles" in opts.parts else None
    if profile_times is not None:
        results += [Check(*check) for check in profiles.checks(profile_times)]
    heading = [f"iflow2api: {opts.gateway_cmd}"]
    body_table = None if body_runs is None else bodies.table(body_runs)
    print(report.render(outcomes, comparison, results, heading, titles(opts), body_table))
    if profile_times is not None:
        print("\n" + "\n".join(profiles.table(profile_times, profiles.measure_streams())))
    if lease_comparison is not None:
        print("\n" + "\n".join(leases.table(lease_comparison)))
    print(f"\n(took {time.monotonic() - started:.0f} s)")
    if opts.json_path is not None:
        options = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(opts).items()}
        report.write_json(opts.json_path, outcomes, comparison, results, options, body_runs)
    missed = any(check.passed is not True for check in results)
    return 1 if opts.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
