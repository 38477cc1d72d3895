"""The lease round trip: what several instances' coordination adds to a request (issue 13, item 9).

With ``redis_url`` set, every request on an account with a concurrency limit takes a lease in Redis
before it goes upstream and gives it back when it ends; one process alone counts in memory and
awaits nothing. Measured two ways, in one run:

- end to end: two gateways of the same build in front of the fast upstream, each with one iFlow
  account limited to one request at a time; *single* without ``redis_url``, *leased* with it,
  pointed at a private ``redis-server`` on loopback. One connection, one request at a time,
  alternating turns (``bench/loadgen.py turns``); the leased gateway's p50 and p99 less the single
  one's are what the lease adds to a request;
- alone: in this process, ``RedisCoordinator.take_lease`` then ``give_back`` against the same
  Redis, one after the other, many times: the round trip without the gateway around it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import ANY_KEY, BENCH, CHAT_PATH, body, gateway_argv, gateway_env, probe, run_json
from bench.pool_path import Plan
from bench.servers import BenchError, Server, die_with_parent, free_port, start, stop

#: The most the lease may add to a request at p50 on loopback (the issue's target), in microseconds.
LIMIT_US = 1000.0
TARGET = "lease round trip adds < 1 ms p50"
ROUND_TRIPS = 2000


@dataclass(slots=True)
class LeaseComparison:
    """``single``/``leased``: bench/loadgen.py turns' result per gateway; ``round_trip_us``: p50 and
    p99 of take_lease + give_back alone; ``error`` says why a part did not run."""

    plan: dict[str, int] = field(default_factory=dict)
    single: dict[str, Any] = field(default_factory=dict)
    leased: dict[str, Any] = field(default_factory=dict)
    round_trip_us: dict[str, float] = field(default_factory=dict)
    #: Commands Redis ran per request the leased gateway was sent (those its Lua scripts run
    #: included): at least one, or it took no lease.
    redis_per_request: float | None = None
    error: str | None = None
    log_tail: str = ""


class Redis:
    """A private redis-server on a free loopback port: nothing saved, gone with the run."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise BenchError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(workdir)]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        self._wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("redis-server did not answer PING within 10 s")

    def commands(self) -> int:
        """Commands Redis has processed so far (``INFO stats``), to see the gateway really asks it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"INFO stats\r\n")
            reply = b""
            while b"total_commands_processed:" not in reply or not reply.endswith(b"\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        for line in reply.decode(errors="replace").splitlines():
            if line.startswith("total_commands_processed:"):
                return int(line.partition(":")[2])
        raise BenchError("redis-server did not say how many commands it processed")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


def round_trips(redis_url: str, rounds: int = ROUND_TRIPS) -> dict[str, float]:
    """p50 and p99 of one take_lease + give_back, in microseconds, after a tenth as many unmeasured."""
    try:
        from iflow2api.coordination.redis import RedisCoordinator
    except ImportError as exc:
        raise BenchError(f"this build has no Redis coordinator: {exc}") from None

    async def measure() -> list[float]:
        coordinator = RedisCoordinator(redis_url, instance="bench")
        await coordinator.start()
        samples = []
        try:
            for number in range(rounds + rounds // 10):
                started = time.perf_counter()
                taken = await coordinator.take_lease("bench-account", 1, 30.0)
                if taken.lease_id is None:
                    raise BenchError(f"the lease was refused on a free account ({taken.held} held)")
                await coordinator.give_back("bench-account", taken.lease_id)
                if number >= rounds // 10:
                    samples.append((time.perf_counter() - started) * 1e6)
        finally:
            await coordinator.close()
        return samples

    samples = asyncio.run(measure())
    cuts = statistics.quantiles(samples, n=100)
    return {"p50": statistics.median(samples), "p99": cuts[98]}


def compare(workdir: Path, upstream_url: str, gateway_cmd: str, plan: Plan) -> LeaseComparison:
    """Start Redis and both gateways, measure them in turns and the round trip alone, stop them."""
    comparison = LeaseComparison(plan={"requests": plan.requests, "turns": plan.turns, "warmup": plan.warmup})
    workdir = workdir / "leases"
    workdir.mkdir()
    servers: dict[str, Server] = {}
    redis: Redis | None = None
    try:
        redis = Redis(workdir)
        for name, extra in (("single", {}), ("leased", {"IFLOW2API_REDIS_URL": redis.url})):
            folder = workdir / name
            folder.mkdir()
            # One request at a time on the account: the limit that a lease enforces across instances.
            env = {**gateway_env(folder, upstream_url), "IFLOW2API_CONCURRENCY": "1", **extra}
            port = free_port()
            servers[name] = start(name, gateway_argv(gateway_cmd, port, upstream_url), port, env, workdir)
            problem = probe(servers[name].url)
            if problem is not None:
                raise BenchError(f"{name} answers wrongly: {problem}\n{servers[name].log_tail()}")
        before = redis.commands()
        comparison.single, comparison.leased = _turns([servers["single"].url, servers["leased"].url], plan)
        sent = int(comparison.leased.get("sent", 0))
        # Less the INFO command itself.
        comparison.redis_per_request = (redis.commands() - before - 1) / sent if sent else None
        comparison.round_trip_us = round_trips(redis.url)
    except BenchError as exc:
        comparison.error = str(exc)
    finally:
        if "leased" in servers:
            comparison.log_tail = servers["leased"].log_tail(20)
        for server in servers.values():
            stop(server)
        if redis is not None:
            redis.stop()
    return comparison


def _turns(urls: list[str], plan: Plan) -> list[dict[str, Any]]:
    argv = [sys.executable, str(BENCH / "loadgen.py"), "turns", "--body", body(False)]
    for url in urls:
        argv += ["--url", url + CHAT_PATH, "--key", ANY_KEY]
    argv += ["--requests", str(plan.requests), "--turns", str(plan.turns)]
    argv += ["--warmup-requests", str(plan.warmup)]
    total = len(urls) * (plan.warmup + plan.turns * plan.requests)
    results: list[dict[str, Any]] = run_json(argv, timeout=60 + total * 0.02)
    return results


def _latency(result: dict[str, Any], stat: str) -> float | None:
    table = result.get("latency_us") or {}
    value = table.get(stat)
    return None if value is None else float(value)


def added(comparison: LeaseComparison, stat: str) -> float | None:
    """The leased gateway's latency less the single one's at ``stat``, in microseconds."""
    single, leased = _latency(comparison.single, stat), _latency(comparison.leased, stat)
    return None if single is None or leased is None else leased - single


def checks(comparison: LeaseComparison) -> list[tuple[str, bool | None, str]]:
    p50 = added(comparison, "p50")
    if comparison.error is not None or p50 is None:
        return [(TARGET, None, "n/a")]
    failed = int(comparison.single.get("errors", 0)) + int(comparison.leased.get("errors", 0))
    shown = f"{p50 / 1000:+.3f} ms"
    if failed:
        return [(TARGET, False, shown + f"; {failed:,} requests failed")]
    asked = comparison.redis_per_request
    if asked is None or asked < 1:
        # Fast because it never asked Redis: that measured no lease at all.
        return [(TARGET, False, shown + f"; Redis ran only {asked or 0:.2f} commands per request")]
    return [(TARGET, p50 < LIMIT_US, shown + f"; Redis ran {asked:.1f} commands per request")]


def table(comparison: LeaseComparison) -> list[str]:
    plan = comparison.plan
    lines = [
        f"The lease round trip (Redis on loopback): {plan.get('turns')} turns of "
        f"{plan.get('requests'):,} requests per gateway, one at a time, "
        f"after {plan.get('warmup'):,} of warm-up (ms)"
    ]
    lines.append(f"  {'':<24}{'p50':>10}{'p99':>10}")
    for label, result in (("single process", comparison.single), ("with redis_url", comparison.leased)):
        lines.append(f"  {label:<24}{_ms(_latency(result, 'p50'))}{_ms(_latency(result, 'p99'))}")
    lines.append(f"  {'added per request':<24}{_ms(added(comparison, 'p50'))}{_ms(added(comparison, 'p99'))}")
    alone = comparison.round_trip_us
    lines.append(
        f"  {'take + give back alone':<24}{_ms(alone.get('p50'))}{_ms(alone.get('p99'))}"
        f"   ({ROUND_TRIPS:,} in this process)"
    )
    if comparison.redis_per_request is not None:
        lines.append(
            "  commands Redis ran per request of the leased gateway (its scripts' own included): "
            f"{comparison.redis_per_request:.1f}"
        )
    if comparison.error is not None:
        lines += [f"  error: {comparison.error.splitlines()[0]}", comparison.log_tail]
    return lines


def _ms(us: float | None) -> str:
    return f"{'-':>10}" if us is None else f"{us / 1000:>10.3f}"
