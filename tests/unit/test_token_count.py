"""count_tokens against the real tokenizers shipped offline, over a small fixed prompt set."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iflow2api.dialects.token_count import (
    PER_MESSAGE,
    completion_output,
    counter_for,
    estimate_chat_tokens,
    estimate_text_tokens,
    estimate_usage,
    message_output,
)
from tests.unit.stream_output import chunks_output

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = {
    "english": "The quick brown fox jumps over the lazy dog. " * 20,
    "code": (ROOT / "tests/data/code_sample.txt").read_text(),
    "chinese": "将 iFlow CLI 的 AI 服务暴露为 OpenAI 兼容 API,支持流式和非流式响应。" * 5,
}


@pytest.mark.parametrize("model", ["qwen3-coder-plus", "deepseek-v3.2-chat", "glm-4.7"])
@pytest.mark.parametrize("text", PROMPTS.values(), ids=PROMPTS.keys())
def test_real_tokenizers_are_used_and_agree_across_families(model: str, text: str) -> None:
    count = counter_for(model)
    assert count is not estimate_text_tokens, "the offline tokenizer packages should be installed"
    qwen, deepseek = counter_for("qwen-max")(text), counter_for("deepseek-chat")(text)
    assert abs(qwen - deepseek) / deepseek < 0.10  # stated in the README: within 8% on this set
    assert count(text) in (qwen, deepseek)


def test_the_heuristic_is_a_rough_fallback() -> None:
    for text in PROMPTS.values():
        real = counter_for("qwen-max")(text)
        assert abs(estimate_text_tokens(text) - real) / real < 0.36


def test_chat_framing_and_tools_count() -> None:
    bare = {"messages": [{"role": "user", "content": "hello"}]}
    with_tools = {**bare, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    count = counter_for("glm-4.7")
    assert estimate_chat_tokens(with_tools, count) > estimate_chat_tokens(bare, count) > count("hello")


def test_an_estimated_usage_counts_input_and_everything_the_model_wrote() -> None:
    chat = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hello"}]}
    count = counter_for("glm-4.7")
    message = {
        "role": "assistant",
        "content": "The answer.",
        "reasoning_content": "Think first.",
        "tool_calls": [{"id": "t", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}}],
    }
    written = "The answer.Think first.look" + '{"q":1}'
    assert message_output(message) == written
    assert completion_output({"choices": [{"index": 0, "message": message}, 7]}) == written
    deltas: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Think first."}}]},
        {"choices": [{"index": 0, "delta": {"content": "The answer."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "look"}}]}}]},
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"q":1}'}}]}}
            ]
        },
        {"choices": [], "usage": None},
    ]
    assert sorted(chunks_output(deltas)) == sorted(written)
    usage = estimate_usage(chat, written)
    assert usage == {
        "prompt_tokens": estimate_chat_tokens(chat, count),
        "completion_tokens": count(written),
        "total_tokens": estimate_chat_tokens(chat, count) + count(written),
    }
    assert estimate_usage(chat, "")["completion_tokens"] == 0


def per_character(text: str) -> int:
    """The heuristic as first written: one token per wide character, four characters otherwise."""
    wide = sum(
        1
        for char in text
        if 0x2E80 <= ord(char) <= 0x9FFF
        or 0xAC00 <= ord(char) <= 0xD7AF
        or 0xF900 <= ord(char) <= 0xFAFF
        or 0xFF00 <= ord(char) <= 0xFFEF
        or 0x20000 <= ord(char) <= 0x2FFFF
    )
    return wide + math.ceil((len(text) - wide) / 4)


EDGES = "".join(
    chr(c) for c in (0x2E7F, 0x2E80, 0x9FFF, 0xA000, 0xABFF, 0xAC00, 0xD7AF, 0xD7B0, 0xF8FF, 0xF900)
) + "".join(
    chr(c) for c in (0xFAFF, 0xFB00, 0xFEFF, 0xFF00, 0xFFEF, 0xFFF0, 0x1FFFF, 0x20000, 0x2FFFF, 0x30000)
)


@given(st.text() | st.text(alphabet=EDGES + "ab 中"))
def test_the_heuristic_counts_as_it_always_did(text: str) -> None:
    assert estimate_text_tokens(text) == per_character(text)


class NoWalking(str):
    """A text that refuses to be walked character by character in Python."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("walked character by character")


@pytest.mark.parametrize("text", [*PROMPTS.values(), "", "中文" * 10])
def test_the_heuristic_never_walks_the_text_in_python(text: str) -> None:
    # A client leaving mid-stream is estimated on the event loop (no time for a thread): a 32 MiB
    # prompt walked in Python blocked it for over a second.
    assert estimate_text_tokens(NoWalking(text)) == per_character(text)
    chat = {"model": "glm-4.7", "messages": [{"role": "user", "content": NoWalking(text)}]}
    assert estimate_usage(chat, NoWalking(text), estimate_text_tokens)["prompt_tokens"] == (
        PER_MESSAGE + per_character(text)
    )
