"""The ``enable_thinking`` / ``thinking_budget`` switch that Qwen's hosts made common, as DashScope
and SiliconFlow both take it, and the model-pattern options their profiles share.

Pure helpers, no profile here (the module defines no ``PROFILE``): lists of model patterns given as
one option's text (``"qwq*|*-thinking*"``, matched case-insensitively), an effort → budget table
given the same way (``"low=4096|medium=16384"``), and the budget a thinking intent asks for. The
items are separated by ``|``, since commas separate the ``provider_options`` setting's own pairs.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from iflow2api.dialects.intent import Intent
from iflow2api.providers.rules import with_reasoning_on_tool_calls


def items(text: object) -> list[str]:
    """The items of an option's text, ``|``-separated, without blanks.

    >>> items("balance is insufficient | insufficient balance|")
    ['balance is insufficient', 'insufficient balance']
    """
    return [item.strip() for item in str(text).split("|") if item.strip()]


def model_in(model: str, patterns: object) -> bool:
    """Whether ``model`` matches one of the ``|``-separated ``fnmatch`` patterns (case-insensitive).

    >>> model_in("Pro/deepseek-ai/DeepSeek-V4", "qwq*|pro/deepseek-ai/deepseek-v4*"), model_in("qwen3", "")
    (True, False)
    """
    name = model.lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in items(patterns))


def budget_table(text: object) -> dict[str, int]:
    """An effort → tokens table from an option's text; an effort it leaves out gets no budget.

    >>> budget_table("low=4096 | medium=16384")
    {'low': 4096, 'medium': 16384}
    """
    table: dict[str, int] = {}
    for entry in items(text):
        effort, _, tokens = entry.partition("=")
        if effort.strip() and tokens.strip():
            table[effort.strip()] = int(tokens)
    return table


def budget_of(intent: Intent, table: dict[str, int], low: int, high: int | None) -> int | None:
    """The ``thinking_budget`` for ``intent``: Anthropic's own budget, else its effort's entry in
    ``table``; kept within ``low``..``high`` (``high`` None: the model's own limit, not ours to
    know). None: send no budget, the model's default applies.

    >>> budget_of(Intent("on", "medium", 50_000), {}, 128, 32_768)
    32768
    >>> budget_of(Intent("on", "high"), {"low": 4096}, 1, None) is None
    True
    """
    budget = intent.budget if intent.budget is not None else table.get(intent.effort or "")
    if budget is None:
        return None
    budget = max(low, budget)
    return budget if high is None else min(high, budget)


def lowest_budget(table: dict[str, int], low: int) -> int:
    """The least budget the table offers (a model that cannot stop thinking, asked to: its
    lowest level), or ``low`` when the table is empty."""
    return max(low, min(table.values(), default=low))


def with_reasoning_echoed(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` whose tool-call turns all carry ``reasoning_content``, empty where none is known
    (``rules.with_reasoning_on_tool_calls``): for a hosted model that refuses a thinking tool loop
    without it. The same dict when nothing was missing."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    filled = with_reasoning_on_tool_calls(messages)
    return body if filled is messages else {**body, "messages": filled}
