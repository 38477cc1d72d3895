"""SiliconFlow, as its API reference and observed answers show it (checked 2026-12-03; sources in
``iflow2api.providers.siliconflow``).

Its error bodies are ``{"code", "message", "data"}``: an unknown model is 400 ``20012``, a thinking
tool loop of a DeepSeek or Kimi model without ``reasoning_content`` is 400 ``20015``, thinking off on
DeepSeek-V4-Pro is a 400. Its own stricter checks (undocumented answers, so that the profile's rules
are seen to hold): ``thinking_budget`` outside 128..32768, ``reasoning_effort`` other than high|max or
on a model that does not take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host

#: Models that take reasoning_effort (the API reference's list).
EFFORT_MODELS = ("Pro/deepseek-ai/DeepSeek-V4", "deepseek-ai/DeepSeek-V4-Flash", "Pro/zai-org/GLM-5.2")
#: Models that refuse thinking off.
ALWAYS_THINKING = ("deepseek-ai/DeepSeek-V4-Pro", "Pro/deepseek-ai/DeepSeek-V4", "Pro/zai-org/GLM-5.2")
#: Model families that want their reasoning back in a thinking tool loop.
ECHO_FAMILIES = ("deepseek", "kimi")
ECHO_MESSAGE = "The `reasoning_content` in the thinking mode must be passed back to the API."


def error(reason: str, status: int, code: int, message: str) -> checks.Rejection:
    return checks.Rejection(reason, status, {"code": code, "message": message, "data": None})


def out_of_credit() -> dict[str, Any]:
    """A spent paid balance, as seen on api.siliconflow.cn (err.dmxapi.cn/detail.php?id=1150), HTTP 403."""
    message = (
        "The selected model requires paid balance. Your paid balance is insufficient. "
        "Please top up and try again."
    )
    return {"message": message, "data": None}


class SiliconFlow(Host):
    name = "siliconflow"

    def judge(
        self, headers: Mapping[str, str], body: dict[str, Any] | None, **given: Any
    ) -> checks.Rejection | None:
        rejection = checks.judge_openai(headers, body, **given)
        if rejection is not None and rejection.status == 404:
            return error(rejection.reason, 400, 20012, "Model does not exist. Please check it carefully.")
        if rejection is not None or body is None:
            return rejection
        return _thinking(body) or _echo(body)


def _thinking(body: dict[str, Any]) -> checks.Rejection | None:
    model = body["model"]
    if body.get("enable_thinking") is False and model in ALWAYS_THINKING:
        return error(
            "thinking off on a model that always thinks",
            400,
            20015,
            "enable_thinking can not be false for this model",
        )
    if "thinking_budget" in body:
        budget = body["thinking_budget"]
        if not checks._is_int(budget) or not 128 <= budget <= 32_768:
            return error(
                f"thinking_budget {budget!r}", 400, 20015, "thinking_budget must be between 128 and 32768"
            )
    if "reasoning_effort" in body:
        if model not in EFFORT_MODELS:
            return error(
                f"reasoning_effort for {model}", 400, 20015, "reasoning_effort is not supported by this model"
            )
        if body["reasoning_effort"] not in ("high", "max"):
            return error("reasoning_effort not high|max", 400, 20015, "reasoning_effort must be high or max")
    return None


def _echo(body: dict[str, Any]) -> checks.Rejection | None:
    model = body["model"]
    thinking = body.get("enable_thinking") is True or model in ALWAYS_THINKING
    if not thinking or not any(family in model.lower() for family in ECHO_FAMILIES):
        return None
    for message in body.get("messages") or ():
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
        ):
            return error("a tool-call turn without reasoning_content", 400, 20015, ECHO_MESSAGE)
    return None


HOST = SiliconFlow
