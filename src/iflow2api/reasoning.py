"""Giving thinking models back the reasoning that clients leave out of the history.

DeepSeek, Kimi and GLM in thinking mode degrade or refuse multi-turn tool use when an earlier
assistant turn comes back without its ``reasoning_content``; OpenAI clients drop that field,
Anthropic clients send ``thinking`` blocks only sometimes, Responses clients send encrypted or no
reasoning. The gateway remembers the reasoning of each assistant turn it produced, keyed by the
turn's tool-call ids and by a hash of its text, and puts it back into the history when it is
missing. Every dialect is translated to Chat Completions first, so this one place serves all three.

>>> store = ReasoningStore()
>>> store.remember({"role": "assistant", "content": "", "reasoning_content": "why",
...                 "tool_calls": [{"id": "call_1", "type": "function", "function": {}}]})
>>> store.restore([{"role": "assistant", "tool_calls": [{"id": "call_1"}]}])[0]["reasoning_content"]
'why'
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from iflow2api.dialects.openai_chat.request import content_text

#: Remembered turns, at most; the oldest are forgotten first.
MAX_ENTRIES = 4096


def _content_key(content: object) -> str | None:
    text = content_text(content).strip()
    if not text:
        return None
    return "text:" + hashlib.sha256(text.encode()).hexdigest()


def _call_keys(message: dict[str, Any]) -> list[str]:
    calls = message.get("tool_calls")
    # The history is the client's: a malformed turn has no keys rather than an error (the host judges it).
    if not isinstance(calls, list):
        return []
    return [
        "call:" + call["id"]
        for call in calls
        if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]
    ]


def _keys(message: dict[str, Any]) -> list[str]:
    keys = _call_keys(message)
    content_key = _content_key(message.get("content"))
    if content_key:
        keys.append(content_key)
    return keys


class ReasoningStore:
    """The reasoning of recent turns, in memory; ``save`` hands each new entry to the state store,
    and ``preload`` brings the store's most recent ones back after a restart."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        *,
        save: Callable[[list[tuple[str, str]]], None] = lambda _items: None,
    ) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._save = save

    def preload(self, items: Iterable[tuple[str, str]]) -> None:
        for key, reasoning in items:
            self._entries[key] = reasoning
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, message: dict[str, Any]) -> None:
        """Keep the reasoning of an assistant turn the upstream just produced."""
        reasoning = message.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            return
        keys = _keys(message)
        for key in keys:
            self._entries[key] = reasoning
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if keys:
            self._save([(key, reasoning) for key in keys])

    def restore(self, messages: list[Any]) -> list[Any]:
        """``messages`` with the remembered reasoning put back where the client left it out.

        Returns the same list object when nothing changed; never edits the caller's dicts.
        """
        if not self._entries:
            return messages
        restored: list[Any] | None = None
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            if message.get("reasoning_content"):
                continue
            reasoning = self._remembered(message)
            if reasoning is None:
                continue
            if restored is None:
                restored = list(messages)
            restored[index] = {**message, "reasoning_content": reasoning}
        return messages if restored is None else restored

    def _remembered(self, message: dict[str, Any]) -> str | None:
        """The reasoning kept for this turn, by its tool calls' ids first: a history's text is
        hashed only for a turn that no id finds, so a long history costs little more than a walk."""
        entries = self._entries
        for key in _call_keys(message):
            if key in entries:
                return entries[key]
        content_key = _content_key(message.get("content"))
        return entries.get(content_key) if content_key else None


class StreamedTurn:
    """Rebuilds the assistant turn of a stream, but only once it shows reasoning.

    Streams without reasoning are never parsed here, so ordinary traffic pays one substring test
    per chunk.
    """

    __slots__ = ("_calls", "_content", "_reasoning", "tracking")

    def __init__(self) -> None:
        self.tracking = False
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._calls: dict[int, str] = {}

    def feed(self, data: bytes, chunk: dict[str, Any] | None = None) -> None:
        if not self.tracking:
            if b'"reasoning_content"' not in data:
                return
            self.tracking = True
        if chunk is None:
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                return
            if not isinstance(parsed, dict):
                return
            chunk = parsed
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("reasoning_content"), str):
                self._reasoning.append(delta["reasoning_content"])
            if isinstance(delta.get("content"), str):
                self._content.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]:
                    self._calls[int(call.get("index", 0))] = call["id"]

    def message(self) -> dict[str, Any] | None:
        if not self.tracking or not self._reasoning:
            return None
        return {
            "role": "assistant",
            "content": "".join(self._content),
            "reasoning_content": "".join(self._reasoning),
            "tool_calls": [{"id": call_id} for _, call_id in sorted(self._calls.items())],
        }
