"""A stream gathered into one ``chat.completion``, for a client that did not ask to stream.

Some hosts think only on streams (DashScope refuses ``enable_thinking`` on a call that does not
stream), so their profile asks for a stream the client never wanted (``providers.base.Prepared``'s
``stream``); the gateway reads it through ``services.streams.parsed_chunks`` like any other and
gathers the chunks here into the whole answer the client expects.

Pure: chunk dicts in (already normalised: reasoning as ``reasoning_content``), one dict out.

>>> gatherer = Gatherer()
>>> gatherer.feed({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
>>> gatherer.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
>>> gatherer.completion()["choices"][0]["message"]
{'role': 'assistant', 'content': 'Hi'}
"""

from __future__ import annotations

from typing import Any


class _ToolCall:
    """One tool call, put together from its fragments (id and name first, then the arguments)."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def feed(self, fragment: dict[str, Any]) -> None:
        if isinstance(fragment.get("id"), str) and fragment["id"] and not self.id:
            self.id = fragment["id"]
        function = fragment.get("function")
        if not isinstance(function, dict):
            return
        # The name comes once; a host that repeats it on every fragment must not have it doubled.
        if isinstance(function.get("name"), str) and function["name"] and not self.name:
            self.name = function["name"]
        if isinstance(function.get("arguments"), str):
            self.arguments.append(function["arguments"])

    def as_dict(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": "".join(self.arguments)}
        return {"id": self.id, "type": "function", "function": function}


class _Choice:
    """What the deltas of one choice index add up to."""

    __slots__ = ("content", "finish_reason", "reasoning", "tool_calls")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, _ToolCall] = {}
        self.finish_reason: str | None = None

    def feed(self, choice: dict[str, Any]) -> None:
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        # ``reasoning`` is what some hosts call it when no rewriter renamed it (dialects.chunks reads both).
        reasoning = delta.get("reasoning_content", delta.get("reasoning"))
        if isinstance(reasoning, str):
            self.reasoning.append(reasoning)
        fragments = delta.get("tool_calls")
        for fragment in fragments if isinstance(fragments, list) else ():
            if isinstance(fragment, dict):
                self._tool_call(fragment).feed(fragment)

    def _tool_call(self, fragment: dict[str, Any]) -> _ToolCall:
        """The call a fragment belongs to: by its ``index``; without one (a host that leaves it
        out), a fragment with an id other than the last call's starts a call, any other continues it."""
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            last = max(self.tool_calls, default=-1)
            fragment_id = fragment.get("id")
            starts = last < 0 or (
                isinstance(fragment_id, str)
                and fragment_id != ""
                and self.tool_calls[last].id not in ("", fragment_id)
            )
            index = last + 1 if starts else last
        return self.tool_calls.setdefault(index, _ToolCall())

    def as_dict(self, index: int) -> dict[str, Any]:
        text = "".join(self.content)
        calls = [self.tool_calls[i].as_dict() for i in sorted(self.tool_calls)]
        # As OpenAI answers a call that only made tool calls: no text is null content, not "".
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if calls:
            message["tool_calls"] = calls
        # A stream cut short without a finish still ended: the client gets what there was.
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        return {"index": index, "message": message, "finish_reason": finish}


class Gatherer:
    """Chunks in (``feed``), the whole answer out (``completion``): content, reasoning and tool
    calls joined per choice, tool calls assembled by their index, the last finish reason and the
    last usage the stream reported."""

    __slots__ = ("_choices", "_head", "usage")

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        #: The last usage a chunk carried; None until one does.
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> None:
        for name in ("id", "created", "model", "system_fingerprint"):
            if name not in self._head and chunk.get(name) is not None:
                self._head[name] = chunk[name]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) and not isinstance(index, bool) else 0
            self._choices.setdefault(index, _Choice()).feed(choice)

    def completion(self) -> dict[str, Any]:
        """The ``chat.completion`` the chunks so far add up to (a stream with no choice at all
        gives one empty answer, as ``UpstreamStream.finish`` refuses such a stream first)."""
        choices = self._choices or {0: _Choice()}
        completion: dict[str, Any] = {
            "id": self._head.get("id", "chatcmpl-iflow2api"),
            "object": "chat.completion",
            "created": self._head.get("created", 0),
            "model": self._head.get("model", ""),
            "choices": [choices[index].as_dict(index) for index in sorted(choices)],
        }
        if "system_fingerprint" in self._head:
            completion["system_fingerprint"] = self._head["system_fingerprint"]
        if self.usage is not None:
            completion["usage"] = self.usage
        return completion
