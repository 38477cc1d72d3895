"""DashScope's OpenAI-compatible mode (Alibaba Cloud Model Studio), as its documents and observed
answers show it (checked 2026-12-03; sources in ``iflow2api.providers.dashscope``).

It refuses what DashScope refuses, with its words: thinking on a call that does not stream, a
thinking-only model called without a stream, a ``thinking_budget`` that is not a positive integer
up to the model's limit, a forced ``tool_choice`` while thinking. Its own stricter checks (not
documented answers, so that the profile's rules are seen to hold): ``enable_thinking: false`` on a
model that cannot stop thinking, a ``developer`` turn, ``reasoning_effort``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host

#: Models the fake plays as thinking-only ("cannot be turned off").
THINKING_ONLY = ("qwq-plus", "qwen3-235b-a22b-thinking-2507")
#: The greatest thinking_budget the fake's models take (the real limit differs per model).
MAX_BUDGET = 38_912


def invalid_parameter(reason: str, message: str, status: int = 400) -> checks.Rejection:
    """DashScope's OpenAI-mode error body (eino#994's shape)."""
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_parameter_error",
    }
    return checks.Rejection(
        reason, status, {"error": error, "id": "chatcmpl-fake", "request_id": "fake-request"}
    )


def arrearage() -> dict[str, Any]:
    """The body of an account in arrears (TradingAgents-CN#170): HTTP 400, not 402."""
    message = "Access denied, please make sure your account is in good standing."
    error = {"code": "Arrearage", "param": None, "message": message, "type": "Arrearage"}
    return {"error": error, "id": "chatcmpl-fake", "request_id": "fake-request"}


class DashScope(Host):
    name = "dashscope"

    def judge(
        self, headers: Mapping[str, str], body: dict[str, Any] | None, **given: Any
    ) -> checks.Rejection | None:
        rejection = super().judge(headers, body, **given)
        if rejection is not None or body is None:
            return rejection
        return _thinking(body) or _fields(body)


def _thinking(body: dict[str, Any]) -> checks.Rejection | None:
    stream = body.get("stream") is True
    only = body["model"] in THINKING_ONLY
    switch = body.get("enable_thinking")
    if switch is not None and not isinstance(switch, bool):
        return invalid_parameter("enable_thinking is not a boolean", "enable_thinking must be a boolean")
    if only and switch is False:
        return invalid_parameter(
            "thinking turned off on a thinking-only model", "This model does not support non-thinking mode"
        )
    if only and not stream:
        message = (
            "This model only support stream mode, please enable the stream parameter to access the model."
        )
        return invalid_parameter("a thinking-only model called without a stream", message)
    thinking = switch is True or only
    if thinking and not stream:
        message = (
            "<400> InternalError.Algo.InvalidParameter: parameter.enable_thinking must be set to false "
            "for non-streaming calls"
        )
        return invalid_parameter("enable_thinking on a call that does not stream", message)
    if "thinking_budget" in body:
        budget = body["thinking_budget"]
        if not checks._is_int(budget) or budget <= 0 or budget > MAX_BUDGET:
            message = (
                "<400> InternalError.Algo.InvalidParameter: The thinking_budget parameter must be a positive "
                f"integer and not greater than {MAX_BUDGET}"
            )
            return invalid_parameter(f"thinking_budget {budget!r}", message)
    choice = body.get("tool_choice")
    if thinking and (choice == "required" or isinstance(choice, dict)):
        message = (
            "<400> InternalError.Algo.InvalidParameter: The tool_choice parameter does not support being "
            "set to required or object in thinking mode"
        )
        return invalid_parameter("a forced tool_choice while thinking", message)
    return None


def _fields(body: dict[str, Any]) -> checks.Rejection | None:
    if "reasoning_effort" in body:
        return invalid_parameter("reasoning_effort sent", "reasoning_effort is not a DashScope parameter")
    for message in body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "developer":
            return invalid_parameter("a developer turn", "Role must be in [user, assistant, system, tool]")
    return None


HOST = DashScope
