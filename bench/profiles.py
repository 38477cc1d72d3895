"""The profile step: what speaking a host's own dialect adds to a request, per provider profile.

In this process, for each profile of the installed iflow2api: the time ``Profile.prepare`` takes
(the host's body, headers and the written bytes) for a coding agent's request in a tool loop — a
20 KB conversation with tool calls, ``reasoning_effort`` set, streaming — many times over; its p50
less the generic profile's (the client's request as it came) is what the profile adds.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.bodies import chat_conversation

#: The most a profile may add at p50 (the issue's target), in milliseconds.
LIMIT_MS = 0.05
ROUNDS = 3_000


@dataclass(frozen=True, slots=True)
class _Account:
    base_url: str
    api_key: str


def _request() -> dict[str, Any]:
    import orjson

    from iflow2api.dialects.openai_chat.request import parse_request

    body = orjson.loads(chat_conversation(20_000))
    body.update(stream=True, reasoning_effort="high")
    return parse_request(orjson.dumps(body))


def measure(rounds: int = ROUNDS) -> dict[str, float]:
    """Each profile's p50 time for ``prepare``, in milliseconds."""
    from iflow2api.providers import PROFILES

    account = _Account("http://127.0.0.1:9/v1", "sk-bench")
    request = _request()
    results: dict[str, float] = {}
    for name, profile_class in PROFILES.items():
        profile = profile_class(thinking_default=None)
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            profile.prepare(account, request, None)
            samples.append(time.perf_counter() - started)
        results[name] = statistics.median(samples) * 1000
    return results


def _stream_events(count: int) -> list[bytes]:
    import orjson

    def chunk(delta: dict[str, str]) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        return orjson.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})

    half = count // 2
    thinking = [chunk({"reasoning_content": f"step {i} of the plan "}) for i in range(half)]
    return thinking + [chunk({"content": f"word{i} "}) for i in range(count - half)]


def measure_streams(chunks: int = 200, rounds: int = 50) -> dict[str, float | None]:
    """Each profile's cost per stream chunk of its rewriter, in microseconds (None: no rewriter,
    the chat stream passes byte for byte)."""
    from iflow2api.providers import PROFILES
    from iflow2api.providers.base import EventRewriter

    request = _request()
    events = _stream_events(chunks)
    results: dict[str, float | None] = {}
    for name, profile_class in PROFILES.items():
        profile = profile_class(thinking_default=None)
        if profile.rewriter(request) is None:
            results[name] = None
            continue
        samples = []
        for _ in range(rounds):
            rewriter = profile.rewriter(request)
            assert rewriter is not None
            started = time.perf_counter()
            EventRewriter(rewriter).feed(events)
            samples.append(time.perf_counter() - started)
        results[name] = statistics.median(samples) / chunks * 1e6
    return results


def table(results: dict[str, float], streams: dict[str, float | None]) -> list[str]:
    generic = results.get("generic", 0.0)
    lines = [
        f"The profile step: Profile.prepare p50 over {ROUNDS:,} runs, 20 KB tool-loop request (ms); "
        "its stream rewriter per chunk (us; - : none, bytes pass through)"
    ]
    for name, ms in sorted(results.items()):
        per_chunk = streams.get(name)
        shown = "-" if per_chunk is None else f"{per_chunk:.1f}"
        lines.append(f"  {name:<12} {ms:8.4f}   adds {ms - generic:+.4f}   stream {shown:>6}")
    return lines


def checks(results: dict[str, float]) -> list[tuple[str, bool | None, str]]:
    generic = results.get("generic")
    if generic is None:
        return [(f"profile step adds < {LIMIT_MS} ms p50", None, "n/a")]
    added = {name: ms - generic for name, ms in results.items() if name != "generic"}
    worst = max(added, key=lambda name: added[name]) if added else "generic"
    shown = f"worst {worst} {added.get(worst, 0.0):+.4f} ms"
    return [(f"profile step adds < {LIMIT_MS} ms p50", all(v < LIMIT_MS for v in added.values()), shown)]
