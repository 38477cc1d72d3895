"""A stream gathered into one answer (``services.gathering``): pure, so tested with literal chunks,
and against the fake's own chunks of a scripted completion, which must gather back to its body."""

from __future__ import annotations

from typing import Any

import pytest

from iflow2api.services.gathering import Gatherer
from tests.fake_iflow.replies import Completion, completion_body, completion_chunks


def gathered(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    gatherer = Gatherer()
    for chunk in chunks:
        gatherer.feed(chunk)
    return gatherer.completion()


def delta(payload: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "c1",
        "created": 7,
        "model": "qwen3.7-plus",
        "choices": [{"index": index, "delta": payload, "finish_reason": finish}],
    }


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "read", "arguments": '{"path": "a.txt"}'},
}


@pytest.mark.parametrize(
    "reply",
    [
        Completion(content="The answer is 4", reasoning="Two and two make four."),
        Completion(content="", reasoning="Look first.", tool_calls=[TOOL_CALL], finish_reason="tool_calls"),
        Completion(
            content="Two calls",
            tool_calls=[TOOL_CALL, {**TOOL_CALL, "id": "call_2"}],
            finish_reason="tool_calls",
        ),
        Completion(content="cut", finish_reason="length"),
    ],
)
def test_the_fakes_stream_gathers_back_to_its_whole_answer(reply: Completion) -> None:
    for separate in (True, False):
        chunks = completion_chunks(reply, "qwen3.7-plus", include_usage=True, separate_usage=separate)
        completion = gathered(list(chunks))  # type: ignore[arg-type]
        whole = completion_body(reply, "qwen3.7-plus")
        message = dict(whole["choices"][0]["message"])
        if not message["content"] and message.get("tool_calls"):
            message["content"] = None  # as OpenAI answers a turn that only called tools
        assert completion["choices"] == [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason}
        ]
        assert completion["usage"] == reply.usage
        assert completion["object"] == "chat.completion"
        assert completion["id"] == chunks[0]["id"] and completion["model"] == "qwen3.7-plus"


def test_tool_call_fragments_are_assembled_by_index_even_interleaved() -> None:
    chunks = [
        delta(
            {
                "role": "assistant",
                "tool_calls": [
                    {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}
                ],
            }
        ),
        delta(
            {
                "tool_calls": [
                    {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{"}}
                ]
            }
        ),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "1}"}}]}),
        delta({}, "tool_calls"),
    ]
    calls = gathered(chunks)["choices"][0]["message"]["tool_calls"]
    assert calls == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]


def test_fragments_without_an_index_follow_their_id() -> None:
    chunks = [
        delta({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{"}}]}),
        delta({"tool_calls": [{"function": {"arguments": "}"}}]}),
        delta({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "[]"}}]}),
    ]
    message = gathered(chunks)["choices"][0]
    assert [(c["id"], c["function"]["arguments"]) for c in message["message"]["tool_calls"]] == [
        ("a", "{}"),
        ("b", "[]"),
    ]
    assert message["finish_reason"] == "tool_calls"  # the stream ended without one


def test_reasoning_under_either_name_and_the_last_usage() -> None:
    chunks = [
        delta({"reasoning": "Hm, "}),
        delta({"reasoning_content": "yes."}),
        delta({"content": "Done"}, "stop"),
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    ]
    completion = gathered(chunks)
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Done",
        "reasoning_content": "Hm, yes.",
    }
    assert completion["usage"]["total_tokens"] == 5
    assert completion["created"] == 7


def test_choices_stay_apart_and_untrusted_pieces_are_skipped() -> None:
    chunks = [
        delta({"content": "zero"}),
        delta({"content": "one"}, index=1),
        {"choices": [7, {"index": 0, "delta": "x"}, {"index": True, "delta": {"content": "!"}}]},
        delta({"content": 5, "tool_calls": "no"}, "stop"),
    ]
    completion = gathered(chunks)
    assert [c["message"]["content"] for c in completion["choices"]] == ["zero!", "one"]
    assert "usage" not in completion


def test_no_chunks_give_one_empty_answer() -> None:
    completion = Gatherer().completion()
    assert completion["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
    ]
