"""§3: the body the CLI would send for a client's OpenAI chat request."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from iflow2api.errors import InvalidRequest
from iflow2api.providers.iflow.rules import build_body

M = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}]
FORCED = {"type": "function", "function": {"name": "ls"}}
ON = {"enable_thinking": True}
OFF = {"enable_thinking": False}

# (id, client request without messages, thinking_default, the body sent upstream without messages)
ROWS: list[tuple[str, dict[str, Any], bool, dict[str, Any]]] = [
    # §3.1 stream fields
    (
        "stream gets usage whatever the client asked",
        {"model": "qwen3-coder-plus", "stream": True, "stream_options": {"include_usage": False}},
        True,
        {
            "model": "qwen3-coder-plus",
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_new_tokens": 64000,
        },
    ),
    (
        "stream without options",
        {"model": "qwen3-coder-plus", "stream": True},
        True,
        {
            "model": "qwen3-coder-plus",
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_new_tokens": 64000,
        },
    ),
    (
        "non-stream carries neither field",
        {"model": "qwen3-coder-plus", "stream": False, "stream_options": {"include_usage": True}},
        True,
        {"model": "qwen3-coder-plus", "max_new_tokens": 64000},
    ),
    # §3.1 token limits
    (
        "max_completion_tokens wins over max_tokens",
        {"model": "qwen3-coder-plus", "max_tokens": 100, "max_completion_tokens": 200},
        True,
        {"model": "qwen3-coder-plus", "max_new_tokens": 200},
    ),
    (
        "max_tokens becomes max_new_tokens",
        {"model": "qwen3-coder-plus", "max_tokens": 100},
        True,
        {"model": "qwen3-coder-plus", "max_new_tokens": 100},
    ),
    (
        "a client's own max_new_tokens is kept",
        {"model": "qwen3-coder-plus", "max_new_tokens": 77},
        True,
        {"model": "qwen3-coder-plus", "max_new_tokens": 77},
    ),
    (
        "unknown model: the CLI's fallback limit, no thinking fields",
        {"model": "some-new-model", "reasoning_effort": "high"},
        True,
        {"model": "some-new-model", "max_new_tokens": 8000},
    ),
    # §3.1 tools
    (
        "empty tools are dropped with their tool_choice",
        {"model": "qwen3-coder-plus", "tools": [], "tool_choice": "auto"},
        True,
        {"model": "qwen3-coder-plus", "max_new_tokens": 64000},
    ),
    (
        "tools, tool_choice and unknown fields pass through",
        {
            "model": "qwen3-coder-plus",
            "tools": TOOLS,
            "tool_choice": "required",
            "user": "u1",
            "seed": 7,
            "temperature": 0.3,
            "top_p": 0.5,
            "response_format": {"type": "json_object"},
        },
        True,
        {
            "model": "qwen3-coder-plus",
            "tools": TOOLS,
            "tool_choice": "required",
            "user": "u1",
            "seed": 7,
            "temperature": 0.3,
            "top_p": 0.5,
            "response_format": {"type": "json_object"},
            "max_new_tokens": 64000,
        },
    ),
    # §3.3 row 2 and §3.1: DeepSeek, its rename and its max_tokens
    (
        "deepseek-v3.2-chat, thinking off: max_tokens too",
        {"model": "deepseek-v3.2-chat", "reasoning_effort": "none"},
        True,
        {"model": "deepseek-v3.2-chat", "max_tokens": 8192, "max_new_tokens": 8192},
    ),
    (
        "deepseek-v3.2-chat, thinking on: renamed, reasoner limit, no max_tokens",
        {"model": "deepseek-v3.2-chat"},
        True,
        {"model": "deepseek-v3.2-reasoner", "thinking_mode": True, "max_new_tokens": 64000},
    ),
    (
        "deepseek-v3.2-chat, high: reasoning too",
        {"model": "deepseek-v3.2-chat", "reasoning_effort": "high", "max_tokens": 1000},
        False,
        {"model": "deepseek-v3.2-reasoner", "thinking_mode": True, "reasoning": True, "max_new_tokens": 1000},
    ),
    (
        "deepseek-v3.2-reasoner asked for directly, thinking off",
        {"model": "deepseek-v3.2-reasoner", "max_completion_tokens": 500},
        False,
        {"model": "deepseek-v3.2-reasoner", "max_new_tokens": 500},
    ),
    (
        "deepseek-r1, medium",
        {"model": "deepseek-r1", "reasoning_effort": "medium", "max_tokens": 500},
        False,
        {
            "model": "deepseek-r1",
            "thinking_mode": True,
            "reasoning": True,
            "max_tokens": 500,
            "max_new_tokens": 500,
        },
    ),
    (
        "first match wins: deepseek before thinking",
        {"model": "deepseek-thinking-x"},
        True,
        {"model": "deepseek-thinking-x", "thinking_mode": True, "max_tokens": 8000, "max_new_tokens": 8000},
    ),
    # §3.2 and §3.3 rows 3-5: GLM
    (
        "glm-4.7 on, forced sampling",
        {"model": "glm-4.7", "temperature": 0.2, "top_p": 0.1},
        True,
        {
            "model": "glm-4.7",
            "chat_template_kwargs": ON,
            "temperature": 1,
            "top_p": 0.95,
            "max_new_tokens": 32000,
        },
    ),
    (
        "glm-4.7 off",
        {"model": "glm-4.7", "reasoning_effort": "none"},
        True,
        {
            "model": "glm-4.7",
            "chat_template_kwargs": OFF,
            "temperature": 1,
            "top_p": 0.95,
            "max_new_tokens": 32000,
        },
    ),
    (
        "glm-4.7 keeps a client's other template kwargs",
        {"model": "glm-4.7", "chat_template_kwargs": {"clear_thinking": False, "enable_thinking": False}},
        True,
        {
            "model": "glm-4.7",
            "chat_template_kwargs": {"clear_thinking": False, "enable_thinking": True},
            "temperature": 1,
            "top_p": 0.95,
            "max_new_tokens": 32000,
        },
    ),
    (
        "first match wins: glm-4.7 before thinking",
        {"model": "glm-4.7-thinking"},
        True,
        {
            "model": "glm-4.7-thinking",
            "chat_template_kwargs": ON,
            "temperature": 1,
            "top_p": 0.95,
            "max_new_tokens": 32000,
        },
    ),
    (
        "glm-5 on",
        {"model": "glm-5"},
        True,
        {
            "model": "glm-5",
            "chat_template_kwargs": ON,
            "enable_thinking": True,
            "thinking": {"type": "enabled"},
            "temperature": 1,
            "top_p": 0.95,
            "max_new_tokens": 32000,
        },
    ),
    (
        "glm-5 off",
        {"model": "glm-5"},
        False,
        {
            "model": "glm-5",
            "chat_template_kwargs": OFF,
            "enable_thinking": False,
            "thinking": {"type": "disabled"},
            "temperature": 1,
            "top_p": 0.95,
            "max_new_tokens": 32000,
        },
    ),
    (
        "glm-4.6 on: renamed, sampling left alone",
        {"model": "glm-4.6", "temperature": 0.3},
        True,
        {"model": "glm-4.6-exp", "temperature": 0.3, "chat_template_kwargs": ON, "max_new_tokens": 32000},
    ),
    (
        "glm-4.6 off: renamed, nothing else",
        {"model": "glm-4.6"},
        False,
        {"model": "glm-4.6-exp", "max_new_tokens": 32000},
    ),
    # §3.2 and §3.3 row 9: Kimi K2.5
    (
        "kimi-k2.5 on",
        {"model": "kimi-k2.5", "temperature": 0.5, "n": 3, "presence_penalty": 1, "max_tokens": 4000},
        True,
        {
            "model": "kimi-k2.5",
            "thinking": {"type": "enabled"},
            "top_p": 0.95,
            "n": 1,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "max_tokens": 4000,
            "max_new_tokens": 4000,
        },
    ),
    (
        "kimi-k2.5 off",
        {"model": "kimi-k2.5"},
        False,
        {
            "model": "kimi-k2.5",
            "thinking": {"type": "disabled"},
            "top_p": 0.95,
            "n": 1,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "max_tokens": 32768,
            "max_new_tokens": 32768,
        },
    ),
    # §3.1 and §6: the other CLI models
    (
        "kimi-k2-thinking on",
        {"model": "kimi-k2-thinking"},
        True,
        {"model": "kimi-k2-thinking", "thinking_mode": True, "max_new_tokens": 32000},
    ),
    (
        "kimi-k2-thinking off",
        {"model": "kimi-k2-thinking", "reasoning_effort": "none"},
        True,
        {"model": "kimi-k2-thinking", "max_new_tokens": 32000},
    ),
    (
        "ROME: fixed sampling, no thinking",
        {"model": "iFlow-ROME-30BA3B", "temperature": 0.1, "top_p": 0.2},
        True,
        {
            "model": "iFlow-ROME-30BA3B",
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
            "max_new_tokens": 64000,
        },
    ),
    (
        "ROME in lower case",
        {"model": "iflow-rome-30ba3b"},
        True,
        {
            "model": "iflow-rome-30ba3b",
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
            "max_new_tokens": 64000,
        },
    ),
    (
        "minimax: no thinking fields",
        {"model": "minimax-m2.5"},
        True,
        {"model": "minimax-m2.5", "max_new_tokens": 64000},
    ),
    (
        "kimi-k2-0905: no thinking fields",
        {"model": "kimi-k2-0905"},
        True,
        {"model": "kimi-k2-0905", "max_new_tokens": 32000},
    ),
    # §3.3 rows 1, 6-8, 11, 12: the remaining families
    ("o1, low: nothing", {"model": "o1-preview"}, True, {"model": "o1-preview", "max_new_tokens": 8000}),
    (
        "o1, high: reasoning",
        {"model": "o1-mini", "reasoning_effort": "high"},
        True,
        {"model": "o1-mini", "reasoning": True, "max_new_tokens": 8000},
    ),
    (
        "claude-3.5-sonnet, high",
        {"model": "claude-3.5-sonnet", "reasoning_effort": "high"},
        True,
        {
            "model": "claude-3.5-sonnet",
            "thinking": {"enabled": True, "max_tokens": 10000, "reasoning_level": "high"},
            "max_new_tokens": 64000,
        },
    ),
    (
        "claude-3.5-sonnet, xhigh: budget capped",
        {"model": "claude-3.5-sonnet", "reasoning_effort": "xhigh"},
        True,
        {
            "model": "claude-3.5-sonnet",
            "thinking": {"enabled": True, "max_tokens": 25000, "reasoning_level": "high"},
            "max_new_tokens": 64000,
        },
    ),
    (
        "claude-3.5-sonnet, default",
        {"model": "claude-3.5-sonnet"},
        True,
        {
            "model": "claude-3.5-sonnet",
            "thinking": {"enabled": True, "max_tokens": 2000, "reasoning_level": "low"},
            "max_new_tokens": 64000,
        },
    ),
    (
        "other claude",
        {"model": "claude-sonnet-4"},
        True,
        {"model": "claude-sonnet-4", "chat_template_kwargs": ON, "max_new_tokens": 64000},
    ),
    (
        "claude off: nothing",
        {"model": "claude-sonnet-4"},
        False,
        {"model": "claude-sonnet-4", "max_new_tokens": 64000},
    ),
    (
        "reasoning in the name",
        {"model": "my-reasoning-model"},
        True,
        {"model": "my-reasoning-model", "reasoning": True, "max_new_tokens": 8000},
    ),
    (
        "qwen 4b: never thinking fields",
        {"model": "QWen3-4B"},
        True,
        {"model": "QWen3-4B", "max_new_tokens": 8192},
    ),
    (
        "mimo",
        {"model": "mimo-v2-flash"},
        True,
        {"model": "mimo-v2-flash", "thinking": {"type": "enabled"}, "max_new_tokens": 64000},
    ),
    # §3.3 intent: reasoning_effort over the default
    (
        "effort none beats the default",
        {"model": "kimi-k2-thinking", "reasoning_effort": "none"},
        True,
        {"model": "kimi-k2-thinking", "max_new_tokens": 32000},
    ),
    (
        "effort minimal is low",
        {"model": "deepseek-v3.2-chat", "reasoning_effort": "minimal"},
        False,
        {"model": "deepseek-v3.2-reasoner", "thinking_mode": True, "max_new_tokens": 64000},
    ),
    (
        "effort low beats a default of off",
        {"model": "kimi-k2-thinking", "reasoning_effort": "low"},
        False,
        {"model": "kimi-k2-thinking", "thinking_mode": True, "max_new_tokens": 32000},
    ),
    (
        "default off",
        {"model": "kimi-k2-thinking"},
        False,
        {"model": "kimi-k2-thinking", "max_new_tokens": 32000},
    ),
    (
        "effort max is high",
        {"model": "deepseek-v3.2-chat", "reasoning_effort": "max"},
        False,
        {
            "model": "deepseek-v3.2-reasoner",
            "thinking_mode": True,
            "reasoning": True,
            "max_new_tokens": 64000,
        },
    ),
]


@pytest.mark.parametrize(
    ("request_", "thinking_default", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_body(request_: dict[str, Any], thinking_default: bool, expected: dict[str, Any]) -> None:
    assert build_body({**request_, "messages": M}, thinking_default=thinking_default) == {
        **expected,
        "messages": M,
    }


KIMI_SAMPLING = {"top_p": 0.95, "n": 1, "presence_penalty": 0, "frequency_penalty": 0}

# §3.2: Kimi K2.5 with thinking on and tools: (tool_choice sent by the client, thinking, tool_choice sent)
KIMI_TOOL_ROWS: list[tuple[str, object, str, object]] = [
    ("missing: auto is added", None, "enabled", "auto"),
    ("auto is kept", "auto", "enabled", "auto"),
    ("none is kept", "none", "enabled", "none"),
    ("required: thinking is turned off", "required", "disabled", "required"),
    ("a named function: thinking is turned off", FORCED, "disabled", FORCED),
]


@pytest.mark.parametrize(
    ("tool_choice", "thinking", "sent"), [r[1:] for r in KIMI_TOOL_ROWS], ids=[r[0] for r in KIMI_TOOL_ROWS]
)
def test_kimi_k25_tool_choice_with_thinking(tool_choice: object, thinking: str, sent: object) -> None:
    request: dict[str, Any] = {"model": "kimi-k2.5", "messages": M, "tools": TOOLS}
    if tool_choice is not None:
        request["tool_choice"] = tool_choice
    assert build_body(request, thinking_default=True) == {
        "model": "kimi-k2.5",
        "messages": M,
        "tools": TOOLS,
        "tool_choice": sent,
        "thinking": {"type": thinking},
        **KIMI_SAMPLING,
        "max_tokens": 32768,
        "max_new_tokens": 32768,
    }


def test_kimi_k25_without_thinking_gets_no_tool_choice() -> None:
    body = build_body({"model": "kimi-k2.5", "messages": M, "tools": TOOLS}, thinking_default=False)
    assert "tool_choice" not in body
    assert body["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize("effort", ["extreme", "", "HIGH"])
def test_unknown_reasoning_effort_is_refused(effort: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_body({"model": "glm-4.7", "messages": M, "reasoning_effort": effort}, thinking_default=True)
    assert caught.value.param == "reasoning_effort"


@pytest.mark.parametrize(
    "request_",
    [
        {
            "model": "glm-4.7",
            "chat_template_kwargs": {"x": 1},
            "stream": True,
            "stream_options": {"include_usage": False},
        },
        {
            "model": "kimi-k2.5",
            "tools": TOOLS,
            "temperature": 0.2,
            "n": 2,
            "max_tokens": 9,
            "reasoning_effort": "high",
        },
        {
            "model": "deepseek-v3.2-chat",
            "max_completion_tokens": 5,
            "max_tokens": 6,
            "reasoning_effort": "medium",
        },
        {"model": "glm-4.6", "tools": [], "tool_choice": "none", "stream": False},
        {"model": "glm-5", "thinking": {"type": "enabled", "budget": 3}, "enable_thinking": True},
    ],
    ids=["glm-4.7", "kimi-k2.5", "deepseek", "glm-4.6", "glm-5"],
)
def test_the_clients_request_is_left_as_it_was(request_: dict[str, Any]) -> None:
    request = {**request_, "messages": copy.deepcopy(M)}
    before = copy.deepcopy(request)
    body = build_body(request, thinking_default=True)
    assert request == before
    assert body is not request


def test_bodies_share_no_nested_objects() -> None:
    first = build_body({"model": "glm-5", "messages": M, "stream": True}, thinking_default=True)
    first["thinking"]["type"] = "changed"
    first["chat_template_kwargs"]["enable_thinking"] = "changed"
    first["stream_options"]["include_usage"] = "changed"
    second = build_body({"model": "glm-5", "messages": M, "stream": True}, thinking_default=True)
    assert second["thinking"] == {"type": "enabled"}
    assert second["chat_template_kwargs"] == ON
    assert second["stream_options"] == {"include_usage": True}
