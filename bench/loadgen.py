"""A cheap HTTP/1.1 load generator: the fallback when wrk is missing, and the streaming client always.

Pre-built request bytes, the httptools parser, keep-alive connections driven from protocol
callbacks (no coroutine per request) and uvloop when installed, so it takes as little of the
machine's two cores as a Python client can. Streaming takes several URLs and goes round them in
turn; so does ``turns``, which sends one request at a time over one connection to compare two
servers' latency closely. It prints its results as JSON::

    python bench/loadgen.py http --url http://127.0.0.1:8001/v1/chat/completions \\
        --body '{"model":"m","messages":[]}' --connections 64 --duration 5
    python bench/loadgen.py stream --url http://127.0.0.1:8001/v1/chat/completions \\
        --url http://127.0.0.1:8002/v1/chat/completions \\
        --body '{"model":"m","messages":[],"stream":true}' --duration 6 --rounds 6 --warmup 1
    python bench/loadgen.py turns --url http://127.0.0.1:8001/v1/chat/completions --key sk-a \\
        --url http://127.0.0.1:8002/v1/chat/completions --key sk-b \\
        --body '{"model":"m","messages":[{"role":"user","content":"1"}]}' \\
        --body '{"model":"m","messages":[{"role":"user","content":"2"}]}' \\
        --requests 1000 --turns 5 --warmup-requests 500

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC, the clock bench/fast_upstream.py stamps each
streamed chunk with, so a chunk's latency is its arrival here minus its stamp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import httptools

# The upstream's stamp, however the gateway re-encodes the chunk (orjson: no space; json: a space).
_STAMP = re.compile(rb'"content": ?"(\d+)"')
_GRACE_SECONDS = 10.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    request: bytes


def build_target(url: str, body: bytes, key: str = "sk-bench") -> Target:
    """One POST, encoded once and written as is for every request.

    >>> build_target("http://127.0.0.1:9/v1/x", b"{}").request.split(b"\\r\\n")[0]
    b'POST /v1/x HTTP/1.1'
    """
    parts = urllib.parse.urlsplit(url)
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return Target(parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + body)


def percentiles(samples_ns: list[int]) -> dict[str, float] | None:
    """Nearest-rank percentiles in microseconds.

    >>> percentiles([1000 * n for n in range(1, 101)])
    {'n': 100, 'p50': 50.0, 'p90': 90.0, 'p99': 99.0, 'max': 100.0}
    """
    if not samples_ns:
        return None
    ordered = sorted(samples_ns)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] / 1000

    return {"n": len(ordered), "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1] / 1000}


@dataclass(slots=True)
class Budget:
    """What every connection of one run shares: when to stop, and how many requests may start."""

    deadline_ns: int
    max_requests: int = 0
    started: int = 0
    errors: int = 0

    def exhausted(self) -> bool:
        if self.max_requests and self.started >= self.max_requests:
            return True
        return time.monotonic_ns() >= self.deadline_ns

    def claim(self) -> bool:
        if self.exhausted():
            return False
        self.started += 1
        return True


class Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request back to back until the budget runs out."""

    def __init__(self, request: bytes, budget: Budget) -> None:
        self._request = request
        self._budget = budget
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._sent_ns = 0
        self._busy = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._busy:
            self._budget.errors += 1
            self._busy = False
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def _send(self) -> None:
        assert self._transport is not None
        if not self._budget.claim():
            self._transport.close()
            return
        self._busy = True
        self._begin()
        self._sent_ns = time.monotonic_ns()
        self._transport.write(self._request)

    def on_message_complete(self) -> None:
        self._busy = False
        if 200 <= self._parser.get_status_code() < 300:
            self._record(time.monotonic_ns())
        else:
            self._budget.errors += 1
        if self._parser.should_keep_alive():
            self._send()
        else:
            self.close()

    def _begin(self) -> None:
        """Hook: a request is about to be sent."""

    def _record(self, now_ns: int) -> None:
        """Hook: a 2xx response has fully arrived."""


class TimedConnection(Connection):
    """Records each non-streaming request's latency."""

    def __init__(self, request: bytes, budget: Budget, latencies: list[int]) -> None:
        super().__init__(request, budget)
        self._latencies = latencies

    def _record(self, now_ns: int) -> None:
        self._latencies.append(now_ns - self._sent_ns)


class RotatingConnection(TimedConnection):
    """Records each request's latency, sending its requests in rotation (one conversation, then the
    next), so that a gateway with session affinity spreads them over its accounts."""

    def __init__(self, requests: list[bytes], budget: Budget, latencies: list[int]) -> None:
        super().__init__(requests[0], budget, latencies)
        self._requests = requests
        self._sent = 0

    def _begin(self) -> None:
        self._request = self._requests[self._sent % len(self._requests)]
        self._sent += 1


@dataclass(slots=True)
class StreamSamples:
    streams: int = 0
    events: int = 0
    unstamped_streams: int = 0
    first_chunk: list[int] = field(default_factory=list)
    chunk_latency: list[int] = field(default_factory=list)
    chunk_gap: list[int] = field(default_factory=list)


class StreamConnection(Connection):
    """Reads one SSE stream after another, timestamping each event when its bytes arrive."""

    def __init__(self, request: bytes, budget: Budget, samples: StreamSamples) -> None:
        super().__init__(request, budget)
        self._samples = samples
        self._arrived_ns = 0
        self._buffer = bytearray()
        self._first_ns: int | None = None
        self._previous_ns: int | None = None

    def data_received(self, data: bytes) -> None:
        # Every event parsed out of these bytes arrived now, whatever the parser does next.
        self._arrived_ns = time.monotonic_ns()
        super().data_received(data)

    def _begin(self) -> None:
        self._buffer.clear()
        self._first_ns = None
        self._previous_ns = None

    def on_body(self, body: bytes) -> None:
        self._buffer += body.replace(b"\r\n", b"\n")
        while (end := self._buffer.find(b"\n\n")) >= 0:
            event = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            self._on_event(event)

    def _on_event(self, event: bytes) -> None:
        stamp = _STAMP.search(event)
        if stamp is None:
            return
        now = self._arrived_ns
        self._samples.events += 1
        self._samples.chunk_latency.append(now - int(stamp.group(1)))
        if self._previous_ns is None:
            self._first_ns = now
        else:
            self._samples.chunk_gap.append(now - self._previous_ns)
        self._previous_ns = now

    def _record(self, now_ns: int) -> None:
        self._samples.streams += 1
        if self._first_ns is None:
            self._samples.unstamped_streams += 1
        else:
            self._samples.first_chunk.append(self._first_ns - self._sent_ns)


async def drive(target: Target, connections: int, budget: Budget, factory: Callable[[], Connection]) -> float:
    """Keep ``connections`` connections busy until the budget runs out; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    opened: list[Connection] = []

    async def keep_one_open() -> None:
        while not budget.exhausted():
            try:
                _, protocol = await loop.create_connection(factory, target.host, target.port)
            except OSError:
                budget.errors += 1
                await asyncio.sleep(0.05)
                continue
            opened.append(protocol)
            await protocol.closed

    started = time.monotonic()
    tasks = [asyncio.ensure_future(keep_one_open()) for _ in range(connections)]
    remaining = (budget.deadline_ns - time.monotonic_ns()) / 1e9 + _GRACE_SECONDS
    _, stuck = await asyncio.wait(tasks, timeout=remaining)
    # A server that stops answering must not hang the benchmark: what is still in flight is an error.
    for protocol in opened:
        protocol.close()
    for task in stuck:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return time.monotonic() - started


async def measure_http(
    target: Target, connections: int, duration: float, max_requests: int
) -> dict[str, Any]:
    budget = Budget(time.monotonic_ns() + int(duration * 1e9), max_requests)
    latencies: list[int] = []
    elapsed = await drive(
        target, connections, budget, partial(TimedConnection, target.request, budget, latencies)
    )
    return {
        "requests": len(latencies),
        "errors": budget.errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "latency_us": percentiles(latencies),
    }


async def measure_streams(
    targets: list[Target], connections: int, duration: float, rounds: int, warmup: float
) -> list[dict[str, Any]]:
    """Stream from each target in turn, round after round, so that whatever else the machine does
    meanwhile falls on all of them alike instead of on whichever ran at that moment."""
    samples = [StreamSamples() for _ in targets]
    errors = [0] * len(targets)

    async def stream_for(target: Target, seconds: float, kept: StreamSamples) -> int:
        budget = Budget(time.monotonic_ns() + int(seconds * 1e9))
        await drive(target, connections, budget, partial(StreamConnection, target.request, budget, kept))
        return budget.errors

    if warmup > 0:
        for target in targets:
            await stream_for(target, warmup, StreamSamples())
    for _ in range(rounds):
        for index, target in enumerate(targets):
            errors[index] += await stream_for(target, duration / rounds, samples[index])
    return [stream_result(kept, errors[index]) for index, kept in enumerate(samples)]


async def measure_turns(
    targets: list[list[Target]], requests: int, turns: int, warmup: int
) -> list[dict[str, Any]]:
    """One connection, one request at a time: ``requests`` to each URL in turn, ``turns`` times over,
    after ``warmup`` requests to each that are not counted. ``targets`` holds each URL's requests.

    The order flips every turn (A B, B A, A B...), so a drift in the machine's speed during the run
    favours neither. Every request sent is counted in ``sent``, warm-up included, for servers that
    keep a record of each one.
    """
    latencies: list[list[int]] = [[] for _ in targets]
    turn_p50s: list[list[float | None]] = [[] for _ in targets]
    sent = [0] * len(targets)
    errors = [0] * len(targets)

    async def turn(index: int, count: int) -> list[int]:
        kept: list[int] = []
        # The deadline only stops a server that stalls: the count ends a turn long before it.
        budget = Budget(time.monotonic_ns() + int((5 + count * 0.01) * 1e9), count)
        requests_bytes = [target.request for target in targets[index]]
        factory = partial(RotatingConnection, requests_bytes, budget, kept)
        await drive(targets[index][0], 1, budget, factory)
        sent[index] += budget.started
        errors[index] += budget.errors
        return kept

    if warmup > 0:
        for index in range(len(targets)):
            await turn(index, warmup)
    for number in range(turns):
        order = range(len(targets)) if number % 2 == 0 else reversed(range(len(targets)))
        for index in order:
            kept = await turn(index, requests)
            latencies[index] += kept
            table = percentiles(kept)
            turn_p50s[index].append(None if table is None else table["p50"])
    return [
        {
            "requests": len(latencies[index]),
            "sent": sent[index],
            "errors": errors[index],
            "latency_us": percentiles(latencies[index]),
            "turn_p50_us": turn_p50s[index],
        }
        for index in range(len(targets))
    ]


def stream_result(samples: StreamSamples, errors: int) -> dict[str, Any]:
    return {
        "streams": samples.streams,
        "errors": errors,
        "unstamped_streams": samples.unstamped_streams,
        "events": samples.events,
        "first_chunk_us": percentiles(samples.first_chunk),
        "chunk_latency_us": percentiles(samples.chunk_latency),
        "chunk_gap_us": percentiles(samples.chunk_gap),
    }


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("mode", choices=["http", "stream", "turns"])
    parser.add_argument("--url", required=True, action="append", help="stream, turns: may be repeated")
    parser.add_argument("--key", action="append", default=[], help="turns: the Bearer key of each --url")
    parser.add_argument(
        "--body", action="append", default=[], help="the JSON request body (turns: may be repeated)"
    )
    # A large body does not fit in one argument (Linux takes at most 128 KiB each).
    parser.add_argument("--body-file", action="append", default=[], help="a file holding a --body")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (stream: per URL)")
    parser.add_argument(
        "--max-requests", type=int, default=0, help="http: stop after this many (0: no limit)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="stream: split the duration into rounds")
    parser.add_argument("--warmup", type=float, default=0.0, help="stream: seconds per URL, not counted")
    parser.add_argument("--requests", type=int, default=1000, help="turns: requests per URL per turn")
    parser.add_argument("--turns", type=int, default=5, help="turns: how many turns each URL gets")
    parser.add_argument("--warmup-requests", type=int, default=0, help="turns: per URL, not counted")
    args = parser.parse_args()
    args.body += [Path(name).read_text() for name in args.body_file]
    if not args.body:
        parser.error("give a --body or a --body-file")
    if args.mode != "turns" and len(args.body) != 1:
        parser.error(f"{args.mode} takes one --body")
    if args.key and len(args.key) != len(args.url):
        parser.error("give one --key per --url, or none")
    keys = args.key or ["sk-bench"] * len(args.url)
    targets = [build_target(url, args.body[0].encode(), key) for url, key in zip(args.url, keys, strict=True)]
    if args.mode == "http":
        if len(targets) != 1:
            parser.error("http takes one --url")
        result: object = run(measure_http(targets[0], args.connections, args.duration, args.max_requests))
    elif args.mode == "stream":
        rounds = max(1, args.rounds)
        result = run(measure_streams(targets, args.connections, args.duration, rounds, args.warmup))
    else:
        rotations = [
            [build_target(url, text.encode(), key) for text in args.body]
            for url, key in zip(args.url, keys, strict=True)
        ]
        turns = max(1, args.turns)
        result = run(measure_turns(rotations, max(1, args.requests), turns, args.warmup_requests))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
