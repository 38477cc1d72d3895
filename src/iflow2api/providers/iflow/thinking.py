"""Which thinking fields the iFlow CLI 0.5.19 sent for a model (§3.3 of ``docs/protocol/iflow.md``).

Pure: a client's ``reasoning_effort`` becomes a ``Thinking``, and the CLI's registry of model
families decides which fields that adds to a request body. ``providers.iflow.rules`` builds the rest of
the body around it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from iflow2api.errors import InvalidRequest

Level = Literal["low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class Thinking:
    """Whether the request thinks, at which CLI ``reasoningLevel``, with which token budget."""

    on: bool
    level: Level = "low"
    #: The CLI's ``maxTokens`` for the level; only Claude 3.5 Sonnet's rule sends it.
    budget: int = 2_000


# The CLI's keyword levels (§3.3, CLI:eMi L996-1045): plain thinking is "normal" (2000, low),
# "think harder" 4000/medium, "megathink" 10000/high and "ultrathink" 31999/high. OpenAI's efforts
# map onto them from "low" up; "max" is one the OpenAI SDK already offers.
_DEFAULT_THINKING: Final = Thinking(on=True, level="low", budget=2_000)
OFF: Final = Thinking(on=False)
_EFFORTS: Final[Mapping[str, Thinking]] = MappingProxyType(
    {
        "none": OFF,
        "minimal": _DEFAULT_THINKING,
        "low": _DEFAULT_THINKING,
        "medium": Thinking(on=True, level="medium", budget=4_000),
        "high": Thinking(on=True, level="high", budget=10_000),
        "xhigh": Thinking(on=True, level="high", budget=31_999),
        "max": Thinking(on=True, level="high", budget=31_999),
    }
)


def thinking_for(request: Mapping[str, Any], *, thinking_default: bool) -> Thinking:
    """The client's intent: its ``reasoning_effort``, or the gateway's default when it gave none."""
    effort = request.get("reasoning_effort")
    if effort is None:
        return _DEFAULT_THINKING if thinking_default else OFF
    thinking = _EFFORTS.get(effort) if isinstance(effort, str) else None
    if thinking is None:
        raise InvalidRequest(
            f"'reasoning_effort' must be one of {', '.join(_EFFORTS)}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    return thinking


Configure = Callable[[dict[str, Any], Thinking], None]


@dataclass(frozen=True, slots=True)
class _Family:
    pattern: re.Pattern[str]
    #: Fields for thinking on; None for a family the CLI marks as not supporting thinking.
    on: Configure | None
    #: Fields for thinking off; most families send nothing then.
    off: Configure | None = None


# Every rule builds fresh nested objects, so no two bodies ever share one.
def _reasoning_unless_low(body: dict[str, Any], thinking: Thinking) -> None:
    if thinking.level != "low":
        body["reasoning"] = True


def _deepseek(body: dict[str, Any], thinking: Thinking) -> None:
    _reasoning_unless_low(body, thinking)
    body["thinking_mode"] = True


def _template_kwargs(enabled: bool) -> Configure:
    def configure(body: dict[str, Any], thinking: Thinking) -> None:
        # The CLI replaces the object; keeping a client's other template kwargs costs nothing.
        given = body.get("chat_template_kwargs")
        body["chat_template_kwargs"] = {
            **(given if isinstance(given, dict) else {}),
            "enable_thinking": enabled,
        }

    return configure


def _glm5(enabled: bool) -> Configure:
    def configure(body: dict[str, Any], thinking: Thinking) -> None:
        _template_kwargs(enabled)(body, thinking)
        body["enable_thinking"] = enabled
        body["thinking"] = {"type": "enabled" if enabled else "disabled"}

    return configure


def _thinking_type(kind: str) -> Configure:
    def configure(body: dict[str, Any], thinking: Thinking) -> None:
        body["thinking"] = {"type": kind}

    return configure


def _claude_35_sonnet(body: dict[str, Any], thinking: Thinking) -> None:
    # The rule caps the budget at its maxThinkingTokens, 25000.
    body["thinking"] = {
        "enabled": True,
        "max_tokens": min(thinking.budget, 25_000),
        "reasoning_level": thinking.level,
    }


def _flag(name: str) -> Configure:
    def configure(body: dict[str, Any], thinking: Thinking) -> None:
        body[name] = True

    return configure


# The CLI's registry (§3.3 table, CLI:_ln L1346-1498): the first pattern that matches, searched
# case-insensitively, decides; the patterns are the CLI's regex sources (so "." in glm-4.7 is any
# character, as it was there). Models no pattern matches get no thinking fields at all.
_FAMILIES: Final[tuple[_Family, ...]] = (
    _Family(re.compile(r"^o1-(preview|mini)", re.I), _reasoning_unless_low),
    _Family(re.compile(r"deepseek", re.I), _deepseek),
    _Family(re.compile(r"glm-4.7", re.I), _template_kwargs(True), _template_kwargs(False)),
    _Family(re.compile(r"glm-5", re.I), _glm5(True), _glm5(False)),
    _Family(re.compile(r"glm-", re.I), _template_kwargs(True)),
    _Family(re.compile(r"^claude-3\.5-sonnet", re.I), _claude_35_sonnet),
    _Family(re.compile(r"claude|haiku|sonnet|opus", re.I), _template_kwargs(True)),
    # The CLI writes ".*reasoning.*" and ".*thinking.*": a search finds the same names without
    # the leading ".*", which makes it scan a long name quadratically.
    _Family(re.compile(r"reasoning", re.I), _flag("reasoning")),
    _Family(re.compile(r"^kimi-k2\.5", re.I), _thinking_type("enabled"), _thinking_type("disabled")),
    _Family(re.compile(r"thinking", re.I), _flag("thinking_mode")),
    # Marked "no thinking": the main chat path then adds nothing, on or off. (Only the CLI's
    # helper calls rewrite such bodies; see §3.3 row 11.)
    _Family(re.compile(r"qwen.*4b", re.I), None),
    _Family(re.compile(r"mimo-", re.I), _thinking_type("enabled")),
)


@functools.lru_cache(maxsize=512)  # a handful of model ids, asked on every request
def _family(model: str) -> _Family | None:
    return next((family for family in _FAMILIES if family.pattern.search(model)), None)


def apply_thinking(body: dict[str, Any], thinking: Thinking) -> None:
    family = _family(body["model"])
    if family is None:
        return
    if thinking.on:
        if family.on is None:
            return
        family.on(body, thinking)
        # The rename follows the thinking fields, inside the same registry call (§3.3 row 2).
        if body["model"].lower() == "deepseek-v3.2-chat":
            body["model"] = "deepseek-v3.2-reasoner"
    elif family.off is not None:
        family.off(body, thinking)


def sends_thinking_fields(model: str) -> bool:
    """Whether the CLI would send thinking fields for ``model`` with thinking on."""
    family = _family(model)
    return family is not None and family.on is not None
