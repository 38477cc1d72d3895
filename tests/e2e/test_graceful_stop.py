"""Stopping the gateway (SIGTERM): open requests may finish within the grace period; what is still
open then ends properly, in its client's dialect (an error event, and ``[DONE]`` for chat)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, iflow_settings
from tests.fake_iflow import Completion, FakeIflow, Hang, Stream

# A short grace, so that the requests still open after it are ended without a long wait.
SHORT_GRACE = {"IFLOW2API_SHUTDOWN_GRACE": "1"}
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
    _wait_for_exit(gateway)
    return seen


def _wait_for_exit(gateway: GatewayProcess) -> None:
    try:
        gateway.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the gateway did not exit after SIGTERM:\n" + gateway.log())
    gateway.stop()  # collects the rest of its log
    assert "Traceback" not in gateway.log()
    assert "shutting down" in gateway.log()


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
    gateway = start_gateway(iflow_settings(fake), SHORT_GRACE)
    fake.enqueue(Stream.of_text(["Hel", "lo", " there"], delay=60))  # silent after the first piece
    path, body = DIALECTS[dialect]

    text = _stop_during_stream(gateway, path, body, lambda seen: "Hel" in seen)

    assert "Hel" in text
    _check_ending(dialect, text)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_sigterm_ends_a_stream_that_only_had_pings(start_gateway: Any, fake: FakeIflow, dialect: str) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_KEEPALIVE_INTERVAL": "0.2", **SHORT_GRACE})
    fake.enqueue(Hang(60))
    path, body = DIALECTS[dialect]

    text = _stop_during_stream(gateway, path, body, lambda seen: ": ping" in seen)

    _check_ending(dialect, text)


def _pieces(text: str) -> str:
    chunks = [json.loads(data) for _, data in _events(text) if data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_a_stream_flowing_at_sigterm_gets_all_its_pieces_and_its_normal_end(
    start_gateway: Any, fake: FakeIflow
) -> None:
    gateway = start_gateway(iflow_settings(fake))  # the default grace: far more than the 1.5 s needed
    fake.enqueue(Stream.of_text([f"p{i} " for i in range(15)], delay=0.1))
    path, body = DIALECTS["chat"]

    text = _stop_during_stream(gateway, path, body, lambda seen: "p2 " in seen)

    assert "gateway_shutting_down" not in text
    assert _pieces(text) == "".join(f"p{i} " for i in range(15))
    assert _events(text)[-1] == (None, "[DONE]")
    assert '"finish_reason":"stop"' in text.replace(" ", "")


def test_a_non_streaming_answer_due_during_the_grace_is_answered(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(iflow_settings(fake))
    fake.enqueue(Hang(1.0, Completion("finished in time")))
    answers: list[httpx.Response] = []
    path, body = DIALECTS["chat"]
    asking = threading.Thread(
        target=lambda: answers.append(
            httpx.post(gateway.url + path, json={**body, "stream": False}, timeout=20)
        )
    )
    asking.start()
    while fake.in_flight == 0 and asking.is_alive():
        time.sleep(0.01)
    gateway.process.terminate()
    asking.join(timeout=20)
    _wait_for_exit(gateway)

    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].json()["choices"][0]["message"]["content"] == "finished in time"


def test_the_grace_lets_a_stream_go_on_and_then_ends_it(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(iflow_settings(fake), SHORT_GRACE)
    # 6 s of output at one piece every 0.3 s: some arrive within the 1 s grace, most would not.
    fake.enqueue(Stream.of_text([f"p{i} " for i in range(20)], delay=0.3))
    path, body = DIALECTS["chat"]

    text = _stop_during_stream(gateway, path, body, lambda seen: "p0 " in seen)

    assert "p1 " in text  # it went on after the signal
    assert "p19 " not in text  # and was ended when the grace was over
    _check_ending("chat", text)


def test_a_second_sigterm_ends_the_open_streams_at_once(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_KEEPALIVE_INTERVAL": "0.2"})
    fake.enqueue(Hang(60))
    path, body = DIALECTS["chat"]
    seen = ""
    with httpx.stream("POST", gateway.url + path, json=body, timeout=httpx.Timeout(20.0)) as answer:
        chunks = answer.iter_text()
        while ": ping" not in seen:
            seen += next(chunks)
        gateway.process.terminate()
        # The stream goes on during the grace (the default, 8 s): pings keep coming.
        after_signal = ""
        while after_signal.count(": ping") < 2:
            after_signal += next(chunks)
        assert "gateway_shutting_down" not in after_signal
        gateway.process.terminate()
        for chunk in chunks:
            after_signal += chunk
    _wait_for_exit(gateway)

    _check_ending("chat", seen + after_signal)
