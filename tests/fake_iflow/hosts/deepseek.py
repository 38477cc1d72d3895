"""The fake's ``deepseek`` mode: api.deepseek.com as its documents say it behaves (checked 2026-12-03).

It refuses what DeepSeek refuses, in DeepSeek's words: a thinking-mode history whose tool-call turns
lack ``reasoning_content`` (https://api-docs.deepseek.com/guides/thinking_mode), a forced
``tool_choice`` while thinking (deepseek-ai/DeepSeek-V3#1376), an unknown model ("Model Not
Exist"), a wrong key (401 "Authentication Fails"). Where the documents are silent it is stricter
and insists on what the gateway should send: only the three documented effort levels, no effort
with thinking off, ``max_tokens`` rather than ``max_completion_tokens``, no tool ``strict`` off the
beta base, no ``logprobs`` while thinking (the older guide's rule).

When it thinks (``thinking`` enabled or absent: the host's default), every answer carries
``reasoning_content``, a default one when the script gave none; when it does not, none. Usage gets
DeepSeek's cache counts beside OpenAI's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host

DEFAULT_REASONING = "The user wants an answer; thinking it through."
LEVELS = ("low", "high", "max")
# https://api-docs.deepseek.com/api/create-chat-completion (via docs.rs ds-api tool.rs).
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

MISSING_REASONING = "The `reasoning_content` in the thinking mode must be passed back to the API."
FORCED_TOOL_CHOICE = "Thinking mode does not support this tool_choice"


def error(reason: str, status: int, message: str, kind: str = "invalid_request_error") -> checks.Rejection:
    """DeepSeek's error body: its ``code`` is ``invalid_request_error`` whatever the case."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": "invalid_request_error"}}
    return checks.Rejection(reason, status, body)


def thinks(body: Mapping[str, Any]) -> bool:
    """Whether the host thinks for this request: unless told ``disabled``, it does."""
    thinking = body.get("thinking")
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


class DeepSeekHost(Host):
    name = "deepseek"
    separate_usage = True

    def judge(
        self, headers: Mapping[str, str], body: dict[str, Any] | None, **known: Iterable[str]
    ) -> checks.Rejection | None:
        rejection = super().judge(headers, body, **known)
        if rejection is not None:
            return _in_deepseeks_words(rejection, checks.bearer_key(headers) or "")
        assert body is not None  # the plain host refuses anything but a JSON object
        problem = _fake_strict(body)
        if problem is not None:
            return error(problem, 400, f"fake DeepSeek: {problem}")
        if thinks(body):
            choice = body.get("tool_choice")
            if choice == "required" or isinstance(choice, dict):
                return error(f"tool_choice {choice!r} while thinking", 400, FORCED_TOOL_CHOICE)
            index = _tool_call_without_reasoning(body["messages"])
            if index is not None:
                return error(
                    f"message {index} made tool calls without reasoning_content", 400, MISSING_REASONING
                )
        return None

    def shape_completion(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        for choice in body.get("choices") or []:
            choice["message"] = _reasoned(choice["message"], thinks(request))
        if isinstance(body.get("usage"), dict):
            body["usage"] = _usage(body["usage"])
        return body

    def shape_chunks(self, chunks: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        thinking = thinks(request)
        out = []
        for chunk in chunks:
            if isinstance(chunk.get("usage"), dict):
                chunk = {**chunk, "usage": _usage(chunk["usage"])}
            if not thinking:
                chunk = {**chunk, "choices": [_without_reasoning(choice) for choice in chunk["choices"]]}
            out.append(chunk)
        reasoned = any("reasoning_content" in c.get("delta", {}) for chunk in out for c in chunk["choices"])
        if thinking and not reasoned and out:
            # The host opens a thinking stream with an empty reasoning delta (deepseek-harness
            # types.ts WireDelta), then thinks before it answers.
            head = out[0]
            out[:0] = [
                {
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "reasoning_content": text},
                            "finish_reason": None,
                        }
                    ],
                }
                for text in ("", DEFAULT_REASONING)
            ]
        return out


def _in_deepseeks_words(rejection: checks.Rejection, key: str) -> checks.Rejection:
    """The plain host's refusal (key, shape, model) as DeepSeek words it."""
    if rejection.status == 401:
        message = f"Authentication Fails, Your api key: ****{key[-4:]} is invalid"
        return error(rejection.reason, 401, message, "authentication_error")
    if rejection.status == 404:
        return error(rejection.reason, 400, "Model Not Exist")
    return rejection


def _fake_strict(body: Mapping[str, Any]) -> str | None:
    """What the documents do not forbid but the gateway must not send (see the module docstring)."""
    thinking = body.get("thinking")
    if thinking is not None and (
        not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled")
    ):
        return f"thinking must be {{'type': 'enabled' | 'disabled'}}, got {thinking!r}"
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in LEVELS:
        return f"reasoning_effort must be one of {', '.join(LEVELS)}, got {effort!r}"
    if effort is not None and not thinks(body):
        return "reasoning_effort sent with thinking disabled"
    if "max_completion_tokens" in body:
        return "max_completion_tokens is not DeepSeek's field (max_tokens is)"
    if thinks(body) and ("logprobs" in body or "top_logprobs" in body):
        return "logprobs while thinking"
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not TOOL_NAME.fullmatch(str(function.get("name"))):
            return f"tool {tool!r} has no valid function name"
        if "strict" in function:
            return "tool strict is a beta feature of https://api.deepseek.com/beta"
    return None


def _tool_call_without_reasoning(messages: list[dict[str, Any]]) -> int | None:
    for index, message in enumerate(messages):
        if (
            message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
        ):
            return index
    return None


def _reasoned(message: dict[str, Any], thinking: bool) -> dict[str, Any]:
    if not thinking:
        return {key: value for key, value in message.items() if key != "reasoning_content"}
    return {**message, "reasoning_content": message.get("reasoning_content") or DEFAULT_REASONING}


def _without_reasoning(choice: dict[str, Any]) -> dict[str, Any]:
    delta = choice.get("delta")
    if not isinstance(delta, dict) or "reasoning_content" not in delta:
        return choice
    return {**choice, "delta": {key: value for key, value in delta.items() if key != "reasoning_content"}}


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Usage as DeepSeek writes it: its cache hit and miss counts, and OpenAI's cached tokens."""
    details = usage.get("prompt_tokens_details")
    hit = usage.get(
        "prompt_cache_hit_tokens", details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    )
    prompt = usage.get("prompt_tokens", 0)
    return {
        **usage,
        "prompt_cache_hit_tokens": hit,
        "prompt_cache_miss_tokens": prompt - hit,
        "prompt_tokens_details": {"cached_tokens": hit},
    }


HOST = DeepSeekHost
