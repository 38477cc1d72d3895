"""What a client asked of thinking, in any dialect: one ``Intent`` that each provider profile
turns into its host's own switch (``iflow2api.providers``).

Pure: the chat request's ``reasoning_effort``, Anthropic's ``thinking`` and Responses'
``reasoning.effort`` each become an ``Intent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from iflow2api.errors import InvalidRequest

#: OpenAI's ``reasoning_effort`` values, and ``max``, which several hosts add.
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

ThinkingMode = Literal["default", "off", "on", "adaptive"]


@dataclass(frozen=True, slots=True)
class Intent:
    """What the client asked of thinking, whatever its dialect said it with.

    ``default``: nothing (the host's default applies, or the ``thinking_default`` setting);
    ``off``; ``on`` with an ``effort`` (one of ``EFFORTS``) and, from Anthropic's
    ``budget_tokens``, a ``budget``; ``adaptive``: Anthropic's "think when it helps".
    """

    mode: ThinkingMode = "default"
    effort: str | None = None
    budget: int | None = None


DEFAULT_INTENT = Intent()


def intent_of_effort(effort: object) -> Intent:
    """The intent an OpenAI ``reasoning_effort`` (Chat Completions, or Responses' ``reasoning.effort``)
    states. A value no host knows is refused here, as OpenAI refuses it.

    >>> intent_of_effort("none"), intent_of_effort("high").effort, intent_of_effort(None).mode
    (Intent(mode='off', effort=None, budget=None), 'high', 'default')
    """
    if effort is None:
        return DEFAULT_INTENT
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise InvalidRequest(
            f"'reasoning_effort' must be one of {', '.join(EFFORTS)}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    return Intent("off") if effort == "none" else Intent("on", effort)


def intent_of_anthropic(request: Any) -> Intent:
    """The intent of an Anthropic Messages request: ``thinking`` when it says, else
    ``output_config.effort``, else none.

    >>> intent_of_anthropic({"thinking": {"type": "enabled", "budget_tokens": 8000}})
    Intent(mode='on', effort='medium', budget=8000)
    >>> intent_of_anthropic({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})
    Intent(mode='adaptive', effort='high', budget=None)
    """
    thinking = request.get("thinking") or {}
    output_effort = (request.get("output_config") or {}).get("effort")
    effort = output_effort if isinstance(output_effort, str) and output_effort in EFFORTS else None
    kind = thinking.get("type")
    if kind == "disabled":
        return Intent("off")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        budget = budget if isinstance(budget, int) and not isinstance(budget, bool) else None
        return Intent("on", effort_of_budget(budget or 0), budget)
    if kind == "adaptive":
        return Intent("adaptive", effort)
    return Intent("on", effort) if effort is not None else DEFAULT_INTENT


def effort_of_budget(budget: int) -> str:
    """The OpenAI effort a thinking budget in tokens stands for (as the chat translation maps it)."""
    return "low" if budget < 4_000 else "medium" if budget < 16_000 else "high"
