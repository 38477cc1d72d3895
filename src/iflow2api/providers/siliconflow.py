"""The ``siliconflow`` profile: SiliconFlow (SiliconCloud), which hosts DeepSeek, GLM, Kimi, MiniMax
and Qwen models under ids such as ``deepseek-ai/DeepSeek-V4-Flash`` (``Pro/`` for paid-only ones).

Every rule below was checked on 2026-12-03 against the sources named beside it
(/work/wt11/facts/dashscope_siliconflow_openrouter.md §2 collects them); what no source settles is an
option (``provider_options``: ``siliconflow.<option>=<value>``).

- Hosts: ``api.siliconflow.cn`` (China), ``api.siliconflow.com`` and ``api.ap.siliconflow.com``
  (international) (docs.siliconflow.cn reasoning guide; docs.siliconflow.com/en/faqs/error-code).
- Thinking: ``enable_thinking`` and ``thinking_budget`` (128 to 32768) "for most reasoning models";
  ``reasoning_effort`` ``high`` or ``max`` only on DeepSeek-V4 and GLM-5.2, ``low``/``medium``
  counting as ``high`` and ``xhigh`` as ``max``
  (https://docs.siliconflow.cn/cn/api-reference/chat-completions/chat-completions, and its
  2026-10-01 transcription). Which models take the effort: option ``effort_models``.
- Thinking cannot be turned off on DeepSeek-V4-Pro (a 400, KunAgent/Kun#303), GLM-5.2 documents no
  off, and the thinking-only models think anyway: option ``always_thinking``; off there is clamped to
  the lowest level.
- Reasoning comes back as ``reasoning_content``, streamed or not (docs.siliconflow.cn/cn/userguide/
  capabilities/reasoning), already the gateway's shape.
- Reasoning back follows the model: DeepSeek-V4 refuses a tool loop without ``reasoning_content``
  (``{"code":20015,...}``, earendil-works/pi#4047), so does Kimi-K2.5 (hAcKlyc/MyAgents#69). Option
  ``echo_reasoning``: the models that get an empty one where none is known.
- Errors are ``{"code", "message", "data"}`` or bare text (docs.siliconflow.com/en/faqs/error-code):
  400 20012 "Model does not exist" → unknown model; 401 invalid key; 429 rate limit; 503 50505
  overloaded. A spent balance is undocumented; observed as 403 "Your paid balance is insufficient"
  (err.dmxapi.cn/detail.php?id=1150): option ``out_of_credit_words``.
- Usage: ``prompt_cache_hit_tokens`` besides ``prompt_tokens_details.cached_tokens`` (API reference
  sample answer): the first becomes the second where the second is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import orjson

from iflow2api.dialects.intent import Intent
from iflow2api.errors import ContextTooLong, GatewayError, ModelNotFound, OutOfCredit
from iflow2api.providers import openai_wire
from iflow2api.providers.base import ModelInfo, Prepared, Profile
from iflow2api.providers.enable_thinking import (
    budget_of,
    budget_table,
    items,
    lowest_budget,
    model_in,
    with_reasoning_echoed,
)
from iflow2api.providers.rules import nearest_effort, without
from iflow2api.redact import redact

#: ``thinking_budget``'s documented range.
MIN_BUDGET, MAX_BUDGET = 128, 32_768
#: The efforts the host offers, least first.
EFFORTS = ("high", "max")

#: Ids from the API reference's model list; their limits are on cloud.siliconflow.cn/models, not in
#: the reference, so none are given.
_MODELS = (
    "deepseek-ai/DeepSeek-V4-Flash",
    "deepseek-ai/DeepSeek-V4-Pro",
    "Pro/deepseek-ai/DeepSeek-V4",
    "deepseek-ai/DeepSeek-V3.2",
    "deepseek-ai/DeepSeek-R1",
    "Pro/zai-org/GLM-5.2",
    "zai-org/GLM-5.1",
    "zai-org/GLM-4.6",
    "moonshotai/Kimi-K2.6",
    "Pro/moonshotai/Kimi-K2.5",
    "moonshotai/Kimi-K2-Thinking",
    "MiniMaxAI/MiniMax-M2.5",
    "Qwen/Qwen3.7-max",
)


class SiliconFlow(Profile):
    """The same switch as DashScope's on whole answers too; the model decides the rest (see the module)."""

    name: ClassVar[str] = "siliconflow"
    title: ClassVar[str] = "SiliconFlow"
    base_url: ClassVar[str] = "https://api.siliconflow.cn/v1"
    hosts: ClassVar[tuple[str, ...]] = ("api.siliconflow.cn", "api.siliconflow.com", "api.ap.siliconflow.com")
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType({model: ModelInfo() for model in _MODELS})
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # Models that take reasoning_effort (high|max).
            "effort_models": "pro/deepseek-ai/deepseek-v4*|deepseek-ai/deepseek-v4-flash*|*/zai-org/glm-5.2*",
            # Models that think whatever they are sent: off becomes their lowest level.
            "always_thinking": (
                "*deepseek-v4-pro*|pro/deepseek-ai/deepseek-v4|*glm-5.2*|*kimi-k2-thinking*|"
                "*deepseek-r1*|*thinking-2507*|*qwq*"
            ),
            # thinking_budget per effort (within 128..32768); an effort left out gets the model's own.
            "effort_budgets": "minimal=1024|low=4096|medium=16384",
            # Words of an error that means the balance is spent (any case).
            "out_of_credit_words": "balance is insufficient|insufficient balance",
            # Models that need reasoning_content on every tool-call turn while thinking.
            "echo_reasoning": "*deepseek*|*kimi*",
        }
    )

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        # The effort goes only to the models that take it, from the intent (it may be Anthropic's).
        body = without(request, ("reasoning_effort",))
        wanted = self.intent(request, intent)
        model = str(request.get("model", ""))
        always = model_in(model, self.option_values["always_thinking"])
        takes_effort = model_in(model, self.option_values["effort_models"])
        switch: dict[str, Any] = {}
        if wanted.mode == "off" and not always:
            switch["enable_thinking"] = False
        elif wanted.mode != "default" or always:
            if not always:
                switch["enable_thinking"] = True
            switch.update(self._level(wanted, takes_effort))
        thinks = switch.get("enable_thinking") is True or always
        if thinks and model_in(model, self.option_values["echo_reasoning"]):
            body = with_reasoning_echoed(body)
        return Prepared(openai_wire.build_body({**body, **switch}), _said(switch, always))

    def _level(self, wanted: Intent, takes_effort: bool) -> dict[str, Any]:
        """How hard to think: ``reasoning_effort`` where the model takes it, else ``thinking_budget``;
        asked for no thinking (a model that always thinks), the lowest of either; with no intent
        (the same), the model's own."""
        if takes_effort:
            if wanted.mode == "default":
                return {}
            effort = None if wanted.mode == "off" else wanted.effort
            if wanted.mode == "adaptive" and effort is None:
                return {}
            return {"reasoning_effort": nearest_effort(effort, EFFORTS)}
        table = budget_table(self.option_values["effort_budgets"])
        if wanted.mode == "off":
            return {"thinking_budget": lowest_budget(table, MIN_BUDGET)}
        budget = budget_of(wanted, table, MIN_BUDGET, MAX_BUDGET)
        return {} if budget is None else {"thinking_budget": budget}

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        hit = usage.get("prompt_cache_hit_tokens")
        details = usage.get("prompt_tokens_details")
        if not isinstance(hit, int) or (isinstance(details, dict) and "cached_tokens" in details):
            return usage
        return {
            **usage,
            "prompt_tokens_details": {**(details if isinstance(details, dict) else {}), "cached_tokens": hit},
        }

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        code, message = _error_of(body)
        known = self._known_error(status, code, message)
        if known is not None:
            return known
        # The rest map as OpenAI's would (401, 403, 429, 4xx, 5xx), from the same words.
        error = {"message": message or f"HTTP {status}", "code": None if code is None else str(code)}
        return openai_wire.http_error(status, orjson.dumps({"error": error}), retry_after=retry_after)

    def _known_error(self, status: int, code: int | None, message: str) -> GatewayError | None:
        prefix = f"SiliconFlow answered {status}: "
        lowered = message.lower()
        if any(word.lower() in lowered for word in items(self.option_values["out_of_credit_words"])):
            return OutOfCredit(prefix + message + " Top up the SiliconFlow account.")
        # 20012 also comes with other bad parameters: only its own words mean an unknown model.
        if "model does not exist" in lowered:
            return ModelNotFound(prefix + message)
        if status == 400 and "context" in lowered and ("length" in lowered or "too long" in lowered):
            return ContextTooLong(prefix + message)
        return None


def _said(switch: dict[str, Any], always: bool) -> str | None:
    """What the ``x-iflow2api-thinking`` header says was sent."""
    if switch.get("enable_thinking") is False:
        return "disabled"
    if not switch and not always:
        return None
    level = "; ".join(
        f"{name}={switch[name]}" for name in ("reasoning_effort", "thinking_budget") if name in switch
    )
    said = "enabled (always on)" if always else "enabled"
    return f"{said}; {level}" if level else said


def _error_of(body: bytes) -> tuple[int | None, str]:
    """The code and message of a SiliconFlow error body: ``{"code", "message"}``, OpenAI's
    ``{"error": {...}}``, or bare text."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, redact(body[:300].decode("utf-8", "replace").strip())
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        payload = payload["error"]
    if isinstance(payload, str):
        return None, redact(payload)
    if not isinstance(payload, dict):
        return None, ""
    code = payload.get("code")
    code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    return code, redact(str(payload.get("message") or ""))


PROFILE = SiliconFlow
