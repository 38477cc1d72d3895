"""A chat completion as the Anthropic Message the client waits for (see the package's notes)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from iflow2api.dialects.anthropic.wire import ContentBlock, Message, StopReason, Usage
from iflow2api.dialects.checks import as_object, as_text, count


def stop_reason(finish_reason: object, *, tool_use: bool) -> StopReason:
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "content_filter":
        return "refusal"
    return "tool_use" if tool_use else "end_turn"


def usage_of(usage: object) -> Usage:
    """Chat usage as Anthropic's: OpenAI's ``prompt_tokens`` include the cached tokens, Anthropic's
    ``input_tokens`` do not."""
    usage = as_object(usage)
    cached = count(as_object(usage.get("prompt_tokens_details")).get("cached_tokens"))
    return {
        "input_tokens": max(0, count(usage.get("prompt_tokens")) - cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": count(usage.get("completion_tokens")),
    }


def message_id(upstream_id: object) -> str:
    return f"msg_{upstream_id}" if isinstance(upstream_id, str) and upstream_id else f"msg_{uuid.uuid4().hex}"


def tool_id(call_id: object) -> str:
    # Kept verbatim: the client sends it back as tool_use_id, and the upstream wants its own id then.
    return call_id if isinstance(call_id, str) and call_id else f"toolu_{uuid.uuid4().hex[:24]}"


def _tool_input(arguments: object) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def from_chat_completion(completion: dict[str, Any], *, model: str) -> Message:
    """The Anthropic Message for an OpenAI chat completion; ``model`` is the one the client named."""
    choices = completion.get("choices")
    choice = as_object(choices[0] if isinstance(choices, list) and choices else None)
    message = as_object(choice.get("message"))
    content: list[ContentBlock] = []
    reasoning = as_text(message.get("reasoning_content")) or as_text(message.get("reasoning"))
    if reasoning:
        content.append(
            {"type": "thinking", "thinking": reasoning, "signature": as_text(message.get("signature"))}
        )
    if as_text(message.get("content")):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = as_object(call.get("function") if isinstance(call, dict) else None)
        if function:
            content.append(
                {
                    "type": "tool_use",
                    "id": tool_id(call.get("id")),
                    "name": as_text(function.get("name")),
                    "input": _tool_input(function.get("arguments")),
                }
            )
    tool_use = any(block["type"] == "tool_use" for block in content)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), tool_use=tool_use),
        "stop_sequence": None,
        "usage": usage_of(completion.get("usage")),
    }
