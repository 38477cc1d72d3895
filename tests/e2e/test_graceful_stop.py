"""Stopping the gateway (SIGTERM) while streams wait on a silent upstream: each one ends properly."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, iflow_settings
from tests.fake_iflow import FakeIflow, Hang, Stream

PROMPT = [{"role": "user", "content": "hi"}]
# (path, body, what the last event must be)
DIALECTS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": "glm-4.7", "messages": PROMPT, "stream": True}),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": PROMPT, "stream": True},
    ),
    "responses": ("/v1/responses", {"model": "glm-4.7", "input": "hi", "stream": True}),
}


def _events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) for each SSE event; comments (pings) left out."""
    events = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name is not None or data:
            events.append((name, "\n".join(data)))
    return events


def _stop_during_stream(
    gateway: GatewayProcess, path: str, body: dict[str, Any], ready: Callable[[str], bool]
) -> str:
    """Read the stream until ``ready`` says so, then SIGTERM the gateway and read to the end."""
    seen = ""
    with httpx.stream("POST", gateway.url + path, json=body, timeout=httpx.Timeout(20.0)) as answer:
        assert answer.status_code == 200
        chunks = answer.iter_text()
        while not ready(seen):
            seen += next(chunks)
        gateway.process.terminate()
        for chunk in chunks:
            seen += chunk
    try:
        gateway.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the gateway did not exit after SIGTERM:\n" + gateway.log())
    gateway.stop()  # collects the rest of its log
    assert "Traceback" not in gateway.log()
    assert "shutting down" in gateway.log()
    return seen


def _check_ending(dialect: str, text: str) -> None:
    events = _events(text)
    assert events, text
    if dialect == "chat":
        assert events[-1] == (None, "[DONE]"), text
        error = json.loads(events[-2][1])["error"]
        assert error["code"] == "gateway_shutting_down", text
    elif dialect == "anthropic":
        name, data = events[-1]
        assert name == "error", text
        assert "shutting down" in json.loads(data)["error"]["message"], text
    else:
        names = [name for name, _ in events]
        assert names.count("response.created") == 1, text
        assert names[-2:] == ["error", "response.failed"], text
        assert json.loads(events[-2][1])["code"] == "gateway_shutting_down", text
        sequence = [json.loads(data)["sequence_number"] for _, data in events]
        assert sequence == list(range(len(sequence))), text


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_sigterm_ends_a_stream_on_a_silent_upstream_with_an_error_event(
    start_gateway: Any, fake: FakeIflow, dialect: str
) -> None:
    gateway = start_gateway(iflow_settings(fake))
    fake.enqueue(Stream.of_text(["Hel", "lo", " there"], delay=60))  # silent after the first piece
    path, body = DIALECTS[dialect]

    text = _stop_during_stream(gateway, path, body, lambda seen: "Hel" in seen)

    assert "Hel" in text
    _check_ending(dialect, text)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_sigterm_ends_a_stream_that_only_had_pings(start_gateway: Any, fake: FakeIflow, dialect: str) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_KEEPALIVE_INTERVAL": "0.2"})
    fake.enqueue(Hang(60))
    path, body = DIALECTS[dialect]

    text = _stop_during_stream(gateway, path, body, lambda seen: ": ping" in seen)

    _check_ending(dialect, text)
