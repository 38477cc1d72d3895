"""An estimate of a request's input tokens, for Anthropic's ``count_tokens``.

No tokenizer of the iFlow model families ships with the gateway, so this is a heuristic over the
text the upstream would see: about four characters per token for Latin script, code and JSON, and
about one token per CJK character (GLM, Qwen, DeepSeek and Kimi vocabularies hold most common
Chinese characters and many two-character words), plus a few tokens of framing per message.

>>> estimate_chat_tokens({"messages": [{"role": "user", "content": "Hello, world!"}]})
8
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from iflow2api.dialects.openai_chat import content_text

#: Framing tokens per message (role markers and separators in the chat templates).
PER_MESSAGE = 4


def _is_wide(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FFFF
    )


def estimate_text_tokens(text: str) -> int:
    wide = sum(1 for char in text if _is_wide(char))
    return wide + math.ceil((len(text) - wide) / 4)


def estimate_chat_tokens(chat: dict[str, Any]) -> int:
    """Tokens of a Chat Completions request's input: messages, tool calls and tool definitions."""
    total = 0
    for message in chat.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += PER_MESSAGE + estimate_text_tokens(content_text(message.get("content")))
        if isinstance(message.get("reasoning_content"), str):
            total += estimate_text_tokens(message["reasoning_content"])
        for call in message.get("tool_calls") or ():
            total += estimate_text_tokens(orjson.dumps(call).decode())
        if isinstance(message.get("content"), list):
            # Images: a flat allowance, as vision encoders use a fixed grid per image.
            total += 85 * sum(
                1 for p in message["content"] if isinstance(p, dict) and p.get("type") == "image_url"
            )
    if chat.get("tools"):
        total += estimate_text_tokens(orjson.dumps(chat["tools"]).decode())
    return total
