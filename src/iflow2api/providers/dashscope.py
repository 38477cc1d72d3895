"""The ``dashscope`` profile: Qwen (and the models it also hosts) on Alibaba Cloud Model Studio,
DashScope's OpenAI-compatible mode.

Every rule below was checked on 2026-12-03 against the sources named beside it
(/work/wt11/facts/dashscope_siliconflow_openrouter.md §1 collects them); what no source settles is an
option (``provider_options``: ``dashscope.<option>=<value>``).

- Hosts and base URLs, one per region, and the workspace domains ``*.maas.aliyuncs.com``
  (https://www.alibabacloud.com/help/en/model-studio/base-url).
- Thinking is ``enable_thinking`` and ``thinking_budget``, top-level in the body; thinking-only models
  cannot turn it off (https://help.aliyun.com/en/model-studio/deep-thinking). ``reasoning_effort`` is
  not documented here, so it is not sent. Which models think only, and which think by default, the
  pages read could not show: options ``thinking_only`` and ``default_may_think``.
- Thinking only on streams: ``enable_thinking`` true on a call that does not stream is a 400
  "parameter.enable_thinking must be set to false for non-streaming calls"
  (https://www.alibabacloud.com/help/en/model-studio/error-code). Such a call is made streaming and
  gathered into one answer for the client (``Prepared.stream``; ``services.gathering``).
- ``tool_choice`` ``required`` or a named function while thinking is a 400 ("does not support being
  set to required or object in thinking mode", cloudwego/eino#994, agentscope-ai/agentscope#1608):
  sent as ``auto``.
- ``preserve_thinking`` feeds earlier reasoning back to the newer Qwen models (QwenLM/qwen-code
  PR #5637, citing the DashScope docs): option ``preserve_thinking``, the models it is sent for.
- The ``developer`` role and ``store`` are not supported (help.aliyun.com/zh/model-studio/
  compatibility-of-openai-with-dashscope, via a third-party table): a developer turn is sent as a
  system turn, ``store`` left out.
- Errors: overdue payment is 400 ``Arrearage`` (TradingAgents-CN#170, QwenLM/qwen-code#54; the
  error-code page groups it under 403) → out of credit; 429 ``Throttling.*`` is a rate limit even
  when it says ``insufficient_quota`` (can1357/oh-my-pi PR #8476: a per-minute throttle); "Range of
  input length should be [1, N]" is a context too long (QwenLM/qwen-code#98).
- Usage: cached prompt tokens already in ``prompt_tokens_details.cached_tokens``
  (https://www.alibabacloud.com/help/en/model-studio/context-cache).
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
    lowest_budget,
    model_in,
    with_reasoning_echoed,
)
from iflow2api.providers.rules import without
from iflow2api.redact import redact

#: Model ids the deep-thinking page and qwen-code PR #5637 name; their limits were not readable.
_QWEN = ("qwen3.8-max", "qwen3.7-max", "qwen3.7-plus", "qwen3.6-plus", "qwen3.6-flash", "qwen3.5-plus")
_QWEN_EARLIER = ("qwen3-max", "qwen-plus", "qwen-flash")
#: Other families' models DashScope hosts.
_HOSTED = ("glm-5.2", "kimi-k2.6", "kimi-k2.7-code")
_MODELS = (*_QWEN, *_QWEN_EARLIER, *_HOSTED)


class DashScope(Profile):
    """Thinking on streams only: a request that may think is sent streaming (see the module)."""

    name: ClassVar[str] = "dashscope"
    title: ClassVar[str] = "Alibaba Cloud Model Studio (DashScope, Qwen)"
    base_url: ClassVar[str] = "https://dashscope.aliyuncs.com/compatible-mode/v1"
    # Beijing, Singapore (-intl), Virginia (-us); Hong Kong as cn-hongkong.dashscope...; workspace
    # domains {WorkspaceId}.{region}.maas.aliyuncs.com.
    hosts: ClassVar[tuple[str, ...]] = (
        "dashscope*.aliyuncs.com",
        "*.dashscope.aliyuncs.com",
        "*.maas.aliyuncs.com",
    )
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType({model: ModelInfo() for model in _MODELS})
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # Models that always think ("cannot be turned off"): QwQ and the -thinking snapshots.
            "thinking_only": "qwq*|*-thinking*",
            # Models the host serves on streams only, thinking or not.
            "stream_only": "",
            # Whether a request without intent may think (the default is per model, unlisted): then
            # a client that does not stream is still called streaming, which the host accepts either way.
            "default_may_think": True,
            # thinking_budget per effort; an effort left out (high and above) gets the model's own.
            "effort_budgets": "minimal=1024|low=4096|medium=16384",
            # The greatest thinking_budget sent (0: the model's own limit, which differs per model).
            "max_thinking_budget": 0,
            # Models sent preserve_thinking: true while they think (documented default-off).
            "preserve_thinking": "qwen3.6-plus*|qwen3.6-max-preview*|qwen3.7-max*|qwen3.7-plus*|kimi-k2.6*",
            # Models that need reasoning_content on every tool-call turn while thinking, as on their
            # own hosts (not verified on DashScope): an empty one is filled in where none is known.
            "echo_reasoning": "deepseek*|kimi*",
        }
    )

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        model = str(request.get("model", ""))
        wanted = self.intent(request, intent)
        always = model_in(model, self.option_values["thinking_only"])
        body = _developer_as_system(without(request, ("reasoning_effort", "store")))
        if wanted.mode == "off" and not always:
            body = {**body, "enable_thinking": False}
            thinking: str | None = "disabled"
        elif wanted.mode == "default":
            # The host's default, whatever it is for this model.
            thinking = None
        else:
            body, thinking = self._thinking_on(body, wanted, always)
        thinks = always or thinking not in (None, "disabled")
        if thinks and body.get("tool_choice") not in (None, "auto", "none"):
            body = {**body, "tool_choice": "auto"}
        if wanted.mode != "off" and model_in(model, self.option_values["preserve_thinking"]):
            body = {**body, "preserve_thinking": True}
        if thinks and model_in(model, self.option_values["echo_reasoning"]):
            body = with_reasoning_echoed(body)
        may_think = thinks or (wanted.mode == "default" and bool(self.option_values["default_may_think"]))
        stream_only = model_in(model, self.option_values["stream_only"])
        if request.get("stream") is not True and (may_think or stream_only):
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
            return Prepared(body, thinking, stream=True)
        return Prepared(openai_wire.build_body(body), thinking)

    def _thinking_on(self, body: dict[str, Any], wanted: Intent, always: bool) -> tuple[dict[str, Any], str]:
        """The body with thinking on at the level ``wanted`` asks; a model that always thinks asked
        for none gets its lowest level."""
        table = budget_table(self.option_values["effort_budgets"])
        cap = int(str(self.option_values["max_thinking_budget"])) or None
        if wanted.mode == "off":
            budget: int | None = lowest_budget(table, 1)
        else:
            budget = budget_of(wanted, table, 1, cap)
        switch: dict[str, Any] = {} if always else {"enable_thinking": True}
        if budget is not None:
            switch["thinking_budget"] = budget
        said = "enabled (always on)" if always else "enabled"
        return {**body, **switch}, said + (f"; thinking_budget={budget}" if budget is not None else "")

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return _known_error(status, body) or openai_wire.http_error(status, body, retry_after=retry_after)

    def business_error(self, payload: object) -> GatewayError | None:
        error = openai_wire.business_error(payload)
        if error is None:
            return None
        return _known_error(error.status, orjson.dumps(payload)) or error


def _developer_as_system(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each ``developer`` turn sent as a ``system`` turn (new dicts, the client's untouched)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(
        isinstance(message, dict) and message.get("role") == "developer" for message in messages
    ):
        return body
    turns = [
        {**message, "role": "system"}
        if isinstance(message, dict) and message.get("role") == "developer"
        else message
        for message in messages
    ]
    return {**body, "messages": turns}


def _known_error(status: int, body: bytes) -> GatewayError | None:
    """DashScope's errors that OpenAI's mapping would misread: overdue payment, an unknown model by
    its DashScope code, and an input beyond the model's range."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    code, message = str(error.get("code") or ""), redact(str(error.get("message") or ""))
    prefix = f"DashScope answered {status}: "
    if code == "Arrearage" or error.get("type") == "Arrearage":
        return OutOfCredit(prefix + message + " Top up the Model Studio account (overdue payment).")
    if status == 404 and code in ("ModelNotFound", "model_not_found", "NotFound"):
        return ModelNotFound(prefix + message)
    if "Range of input length should be" in message:
        return ContextTooLong(prefix + message)
    return None


PROFILE = DashScope
