from __future__ import annotations

import json
from typing import Any

from iflow2api.reasoning import ReasoningStore, StreamedTurn

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_restores_by_tool_call_id_without_touching_the_input() -> None:
    store = ReasoningStore()
    store.remember({"role": "assistant", "content": None, "reasoning_content": "plan", "tool_calls": [CALL]})
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    restored = store.restore(history)
    assert restored[1]["reasoning_content"] == "plan"
    assert "reasoning_content" not in history[1]
    assert restored[0] is history[0] and restored[2] is history[2]


def test_malformed_tool_calls_restore_nothing_and_raise_nothing() -> None:
    # The fuzz test's 500: a remembered turn, then a history whose tool_calls is a number.
    store = ReasoningStore()
    store.remember({"role": "assistant", "content": None, "reasoning_content": "plan", "tool_calls": [CALL]})
    for calls in (5, "call_1", {"id": "call_1"}, None):
        history: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": calls}]
        assert store.restore(history) is history


def test_restores_by_text_and_keeps_what_the_client_sent() -> None:
    store = ReasoningStore()
    store.remember({"role": "assistant", "content": "The answer is 4.", "reasoning_content": "2+2"})
    history = [
        {"role": "assistant", "content": [{"type": "text", "text": "The answer is 4."}]},
        {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "client's own"},
        {"role": "assistant", "content": "Something else."},
    ]
    restored = store.restore(history)
    assert restored[0]["reasoning_content"] == "2+2"
    assert restored[1]["reasoning_content"] == "client's own"
    assert "reasoning_content" not in restored[2]


def test_nothing_to_restore_returns_the_same_list() -> None:
    store = ReasoningStore()
    history = [{"role": "assistant", "content": "hi"}]
    assert store.restore(history) is history
    store.remember({"role": "assistant", "content": "other", "reasoning_content": "r"})
    assert store.restore(history) is history


def test_bounded() -> None:
    store = ReasoningStore(max_entries=3)
    for i in range(10):
        store.remember({"role": "assistant", "content": f"answer {i}", "reasoning_content": f"r{i}"})
    assert len(store) == 3
    assert store.restore([{"role": "assistant", "content": "answer 0"}])[0].get("reasoning_content") is None
    assert store.restore([{"role": "assistant", "content": "answer 9"}])[0]["reasoning_content"] == "r9"


def chunk(delta: dict[str, Any]) -> bytes:
    return json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode()


def test_streamed_turn_rebuilds_only_when_there_is_reasoning() -> None:
    plain = StreamedTurn()
    plain.feed(chunk({"content": "hi"}))
    assert plain.message() is None and not plain.tracking

    turn = StreamedTurn()
    deltas: list[dict[str, Any]] = [
        {"reasoning_content": "let me "},
        {"reasoning_content": "think"},
        {"content": "Calling."},
        {"tool_calls": [{"index": 0, "id": "call_9", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    ]
    for delta in deltas:
        turn.feed(chunk(delta))
    assert turn.message() == {
        "role": "assistant",
        "content": "Calling.",
        "reasoning_content": "let me think",
        "tool_calls": [{"id": "call_9"}],
    }
