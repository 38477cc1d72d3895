"""The ``deepseek`` profile: DeepSeek's own API at ``api.deepseek.com`` (OpenAI format).

Every rule below was checked on 2026-12-03 against DeepSeek's documentation; where the documents are
silent or disagree, the choice is an option (``provider_options``, e.g. ``deepseek.reasoning_filler=.``).
The user-facing account of it is ``docs/providers/deepseek.md``.

Thinking (https://api-docs.deepseek.com/guides/thinking_mode, checked 2026-12-03): a top-level
``thinking: {"type": "enabled"|"disabled"}`` and ``reasoning_effort`` ``low``/``high``/``max``; with
neither, the host thinks at ``high``. Both models are hybrid, so every intent can be honoured::

    >>> body = DeepSeek().build_body({"model": "deepseek-flash", "messages": [],
    ...                               "reasoning_effort": "medium"}, None)
    >>> body.body["thinking"], body.body["reasoning_effort"], body.thinking
    ({'type': 'enabled'}, 'high', 'enabled; reasoning_effort=high')

Reasoning comes back as ``reasoning_content`` (message and delta), the gateway's own shape, so the
stream passes through untouched. It must go back on every assistant turn that made tool calls while
thinking, or the host answers 400 (same guide).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import orjson

from iflow2api import errors
from iflow2api.dialects.intent import Intent
from iflow2api.providers import openai_wire, rules
from iflow2api.providers.base import ModelInfo, Prepared, Profile
from iflow2api.redact import redact

# The newest thinking_mode guide's own mapping of OpenAI's efforts onto its three levels (checked
# 2026-12-03). It differs from rules.nearest_effort on xhigh, which the host sends to high, not max.
EFFORTS: Mapping[str, str] = MappingProxyType(
    {"minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high", "max": "max"}
)
LEVELS = ("low", "high", "max")

# https://api-docs.deepseek.com/quick_start/pricing (checked 2026-12-03): 1M context, 384K output.
# "1M" is taken as 2**20; the host's own 400 once named 1,048,565 as the limit.
_V4 = ModelInfo(context_window=1_048_576, max_output=384 * 1024)

# The words of DeepSeek's 400s that the gateway tells apart (its ``code`` is always
# ``invalid_request_error``, so only the message says which it is).
MISSING_REASONING = "reasoning_content` in the thinking mode must be passed back"
FORCED_TOOL_CHOICE = "thinking mode does not support this tool_choice"
CONTEXT_TOO_LONG = "maximum context length"
UNKNOWN_MODEL = "model not exist"


class DeepSeek(Profile):
    name: ClassVar[str] = "deepseek"
    title: ClassVar[str] = "DeepSeek"
    # https://api-docs.deepseek.com (checked 2026-12-03): the documented base; ".../v1" is accepted
    # too and is no model version.
    base_url: ClassVar[str] = "https://api.deepseek.com"
    hosts: ClassVar[tuple[str, ...]] = ("api.deepseek.com",)
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType(
        {
            "deepseek-flash": _V4,
            "deepseek-v4-pro": _V4,
            # Legacy names, still served by V4.1-Flash (pricing page, checked 2026-12-03).
            "deepseek-v4-flash": _V4,
            "deepseek-v4-flash-vision-exp": _V4,
        }
    )
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # What an assistant tool-call turn with no known reasoning carries: DeepSeek refuses the
            # field missing, and an empty one is accepted in practice (deepseek-ai/deepseek-harness
            # discussions #739, #1850; undocumented by DeepSeek).
            "reasoning_filler": "",
            # false: leave such turns without reasoning_content (the host then answers 400).
            "fill_reasoning": True,
            # Reasoning on tool-call turns even when this request turns thinking off: what the host
            # wants then is undocumented; a turn's reasoning_content is ignored where not needed.
            "reasoning_when_off": True,
            # A forced tool_choice (required or a named function) is a 400 while thinking
            # (deepseek-ai/DeepSeek-V3#1376): "thinking-off" keeps the client's choice and turns
            # thinking off for that call; "auto" keeps thinking and lets the model choose.
            "forced_tool_choice": "thinking-off",
            # logprobs/top_logprobs while thinking: an error in the older guide, unmentioned in the
            # newest; true removes them from thinking requests.
            "drop_logprobs": True,
            # Tool "strict" is a beta feature of the /beta base; elsewhere undocumented.
            "drop_strict": True,
        }
    )

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        """Thinking as DeepSeek's switch and level, reasoning back on tool-call turns, and the
        parameter rules (see the module docstring)."""
        thinking, effort = self._thinking(request, intent)
        forced = rules.forces_a_tool(request.get("tool_choice"))
        body = rules.without(openai_wire.build_body(request), ("reasoning_effort", "thinking"))
        if forced and thinking != "disabled":
            if self.option_values["forced_tool_choice"] == "auto":
                body = {**body, "tool_choice": "auto"}
            else:
                thinking, effort = "disabled", None
        switch = {} if thinking is None else {"thinking": {"type": thinking}}
        level = {} if effort is None else {"reasoning_effort": effort}
        body = {**body, **switch, **level}
        body = rules.renamed(body, "max_completion_tokens", "max_tokens")
        if thinking != "disabled" and self.option_values["drop_logprobs"]:
            body = rules.without(body, ("logprobs", "top_logprobs"))
        if self.option_values["drop_strict"] and isinstance(body.get("tools"), list):
            body = {**body, "tools": rules.without_tool_strict(body["tools"])}
        messages = body.get("messages")
        fill = self.option_values["fill_reasoning"] and (
            thinking != "disabled" or self.option_values["reasoning_when_off"]
        )
        if fill and isinstance(messages, list):
            filled = rules.with_reasoning_on_tool_calls(messages, str(self.option_values["reasoning_filler"]))
            if filled is not messages:
                body = {**body, "messages": filled}
        return Prepared(body, thinking=_header(thinking, effort))

    def _thinking(self, request: dict[str, Any], intent: Intent | None) -> tuple[str | None, str | None]:
        """The ``thinking.type`` and ``reasoning_effort`` to send (None: leave it to the host)."""
        # A client that speaks DeepSeek's own switch (the OpenAI SDK's extra_body) and states no
        # other intent keeps it, over the thinking_default setting too: it is the client's word.
        own = request.get("thinking")
        kind = own.get("type") if isinstance(own, dict) else None
        if kind in ("enabled", "disabled") and intent is None and request.get("reasoning_effort") is None:
            return kind, None
        wanted = self.intent(request, intent)
        if wanted.mode == "default":
            return None, None
        if wanted.mode == "off":
            return "disabled", None
        # "on" and Anthropic's "adaptive" alike: DeepSeek has no adaptive switch; without an effort
        # the host's default level applies.
        return "enabled", None if wanted.effort is None else EFFORTS.get(wanted.effort, "high")

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """DeepSeek's ``prompt_cache_hit_tokens`` as ``prompt_tokens_details.cached_tokens`` when the
        answer did not say it that way too (docs: create-chat-completion usage, checked 2026-12-03).

        >>> DeepSeek().normalize_usage({"prompt_tokens": 9, "prompt_cache_hit_tokens": 4})
        {'prompt_tokens': 9, 'prompt_cache_hit_tokens': 4, 'prompt_tokens_details': {'cached_tokens': 4}}
        """
        hit = usage.get("prompt_cache_hit_tokens")
        details = usage.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        if not isinstance(hit, int) or isinstance(hit, bool) or "cached_tokens" in details:
            return usage
        return {**usage, "prompt_tokens_details": {**details, "cached_tokens": hit}}

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> errors.GatewayError:
        """DeepSeek's error table (https://api-docs.deepseek.com/quick_start/error_codes, checked
        2026-12-03): 402 is a spent balance, and its 400s say in words what they are."""
        message = _message(body) or f"HTTP {status}"
        said = f"DeepSeek answered {status}: {message}"
        lowered = message.lower()
        if status == 402:
            return errors.OutOfCredit(said + " Top up the account at https://platform.deepseek.com.")
        if status == 401:
            return errors.UpstreamAuthError(said + " Check the account's API key.")
        if status == 400 and CONTEXT_TOO_LONG in lowered:
            return errors.ContextTooLong(said)
        if status == 400 and UNKNOWN_MODEL in lowered:
            return errors.ModelNotFound(said)
        if status == 400 and MISSING_REASONING in message:
            return errors.InvalidRequest(
                said + " An earlier assistant turn with tool calls came without its reasoning_content"
                " and the gateway had none to restore: send it back, or set provider_options"
                " deepseek.fill_reasoning=true.",
                code="reasoning_content_missing",
            )
        if status == 400 and FORCED_TOOL_CHOICE in lowered:
            return errors.InvalidRequest(
                said + " Use tool_choice auto, or turn thinking off for this request.",
                param="tool_choice",
            )
        return openai_wire.http_error(status, body, retry_after=retry_after, prefix="DeepSeek answered: ")


def _header(thinking: str | None, effort: str | None) -> str | None:
    """What the ``x-iflow2api-thinking`` header says was sent (None: nothing, the host's default)."""
    if thinking is None:
        return None
    return thinking if effort is None else f"{thinking}; reasoning_effort={effort}"


def _message(body: bytes) -> str:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return redact(body[:300].decode("utf-8", "replace"))
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    # Masked: DeepSeek quotes the key's last digits back ("Your api key: ****abcd is invalid").
    return redact(message) if isinstance(message, str) else ""


PROFILE = DeepSeek
