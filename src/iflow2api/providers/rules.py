"""Small pure rules that several hosts share: dropping and renaming fields, choosing the nearest
effort a host offers, forced tool choices and tool ``strict``, and filling ``reasoning_content``
into a tool loop's history.

Each returns a new object, never editing the client's (``written.WrittenList`` keeps its JSON only
while unchanged, and the reasoning store's restored turns are shared).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: OpenAI's efforts from least to most (``none`` is thinking off, not an effort).
EFFORT_ORDER = ("minimal", "low", "medium", "high", "xhigh", "max")


def without(body: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``body`` without ``names`` (the same dict when it has none of them).

    >>> without({"a": 1, "b": 2}, ["b", "c"])
    {'a': 1}
    """
    present = [name for name in names if name in body]
    if not present:
        return body
    return {key: value for key, value in body.items() if key not in present}


def renamed(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``body`` with ``old`` sent as ``new`` (a ``new`` the client set itself wins).

    >>> renamed({"max_tokens": 5}, "max_tokens", "max_completion_tokens")
    {'max_completion_tokens': 5}
    """
    if old not in body:
        return body
    value = body[old]
    out = {key: item for key, item in body.items() if key != old}
    out.setdefault(new, value)
    return out


def nearest_effort(effort: str | None, offered: Sequence[str]) -> str:
    """The level of ``offered`` (least to most) closest to ``effort``, rounding up on a tie, or the
    least when ``effort`` is not an effort at all: a host's levels are a subset of
    ``EFFORT_ORDER`` (``max`` counts as the highest).

    >>> nearest_effort("medium", ["low", "high", "max"]), nearest_effort("minimal", ["low", "high"])
    ('high', 'low')
    >>> nearest_effort("xhigh", ["low", "high", "max"]), nearest_effort(None, ["high", "max"])
    ('max', 'high')
    """
    if effort not in EFFORT_ORDER:
        return offered[0]
    rank = EFFORT_ORDER.index(effort)
    ranked = [(abs(EFFORT_ORDER.index(level) - rank), -EFFORT_ORDER.index(level), level) for level in offered]
    return min(ranked)[2]


def forces_a_tool(tool_choice: object) -> bool:
    """Whether a ``tool_choice`` forces a tool call (``required`` or a named function), which
    several hosts refuse while thinking.

    >>> forces_a_tool("required"), forces_a_tool({"type": "function"}), forces_a_tool("auto")
    (True, True, False)
    """
    return tool_choice == "required" or isinstance(tool_choice, dict)


def without_tool_strict(tools: list[Any]) -> list[Any]:
    """``tools`` with no ``function.strict`` (the same list when none has one).

    >>> without_tool_strict([{"type": "function", "function": {"name": "f", "strict": True}}])
    [{'type': 'function', 'function': {'name': 'f'}}]
    """
    if not any(isinstance(tool, dict) and "strict" in (tool.get("function") or ()) for tool in tools):
        return tools
    return [
        {**tool, "function": without(tool["function"], ("strict",))}
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        else tool
        for tool in tools
    ]


def with_reasoning_on_tool_calls(messages: list[Any], filler: str | None = "") -> list[Any]:
    """``messages`` where every assistant turn that made tool calls carries ``reasoning_content``:
    what it has, else ``filler`` (None: leave it without). The same list when nothing was missing.

    >>> turns = [{"role": "assistant", "tool_calls": [{"id": "c"}]}, {"role": "tool", "content": "x"}]
    >>> with_reasoning_on_tool_calls(turns)[0]["reasoning_content"]
    ''
    """
    if filler is None:
        return messages
    out: list[Any] | None = None
    for index, message in enumerate(messages):
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
        ):
            if out is None:
                out = list(messages)
            out[index] = {**message, "reasoning_content": filler}
    return messages if out is None else out
