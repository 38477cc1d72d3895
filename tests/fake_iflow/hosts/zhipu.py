"""The fake's ``zhipu`` mode: GLM on api.z.ai / open.bigmodel.cn (pay-as-you-go endpoint) as its
documents say it behaves (checked 2026-12-03; sources in ``docs/providers/zhipu.md``).

It refuses what the host refuses, in its words and shape (``{"error": {"code": "<string>",
"message": ...}}``): ``thinking: {"type": "disabled"}`` on GLM-5.3, word for word as reported
(THU-MAIC/OpenMAIC#1400), an effort GLM-5.3 or 5.2 does not know, a wrong key (401, 1000), an
unknown model (1211). Where the request schema (the Z.ai OpenAPI) leaves a field out or bounds it,
it is strict and refuses what breaks it: more than one ``stop``, a ``tool_choice`` other than
``auto``, tool ``strict``, ``max_completion_tokens``, ``stream_options``, ``max_tokens`` past 131072.

While the model thinks (``thinking`` enabled or absent, or GLM-5.3 whatever it is told) every answer
carries ``reasoning_content`` (a default one when the script gave none); with thinking disabled,
none. A stream's usage rides on its last chunk, unasked.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host

DEFAULT_REASONING = "GLM is thinking about it."
#: The 400 GLM-5.3 answers ``thinking: {"type": "disabled"}`` with on the pay-as-you-go endpoint.
ALWAYS_THINKS = "该模型始终思考，不支持关闭思考；请使用 low、high 或 max。"
EFFORTS = {"glm-5.3*": ("low", "high", "max"), "glm-5.2*": ("high", "max")}
#: GLMs that cannot think: the host ignores ``thinking`` for them (it applies "only [to] GLM-4.5
#: series and higher").
NON_THINKING = ("glm-4-*", "glm-4")
MAX_TOKENS = 131_072
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
FUNCTION_FIELDS = frozenset({"name", "description", "parameters"})


def error(reason: str, status: int, code: str, message: str) -> checks.Rejection:
    return checks.Rejection(reason, status, error_body(code, message))


def error_body(code: str, message: str) -> dict[str, Any]:
    """Zhipu's error body, for tests to script (``HttpError(429, error_body("1113", ...))``)."""
    return {"error": {"code": code, "message": message}}


def thinks(body: Mapping[str, Any]) -> bool:
    """Whether the model thinks for this request."""
    model = str(body.get("model", "")).lower()
    if any(fnmatch.fnmatchcase(model, pattern) for pattern in NON_THINKING):
        return False
    if fnmatch.fnmatchcase(model, "glm-5.3*"):
        return True
    thinking = body.get("thinking")
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


class ZhipuHost(Host):
    name = "zhipu"
    separate_usage = False
    usage_unasked = True

    def judge(
        self, headers: Mapping[str, str], body: dict[str, Any] | None, **known: Iterable[str]
    ) -> checks.Rejection | None:
        """The plain server's checks (``known``: its keys and models) in Zhipu's words, then GLM's."""
        rejection = super().judge(headers, body, **known)
        if rejection is not None and rejection.status == 401:
            return error(rejection.reason, 401, "1000", "Authentication Failed")
        if rejection is not None and rejection.status == 404:
            return error(rejection.reason, 400, "1211", "Model does not exist, please check the model code")
        if rejection is not None or body is None:
            return rejection
        thinking = body.get("thinking")
        model = str(body["model"]).lower()
        if (
            fnmatch.fnmatchcase(model, "glm-5.3*")
            and isinstance(thinking, dict)
            and thinking.get("type") == "disabled"
        ):
            return error("thinking disabled on GLM-5.3", 400, "1210", ALWAYS_THINKS)
        problem = _schema(body)
        if problem is not None:
            return error(problem, 400, "1210", f"Incorrect API call parameters: fake Zhipu: {problem}")
        return None

    def shape_completion(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        message = body["choices"][0]["message"]
        if thinks(request):
            message.setdefault("reasoning_content", DEFAULT_REASONING)
        else:
            message.pop("reasoning_content", None)
        return body

    def shape_chunks(self, chunks: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        has_reasoning = any("reasoning_content" in c["choices"][0]["delta"] for c in chunks if c["choices"])
        if not thinks(request):
            for chunk in chunks:
                for choice in chunk["choices"]:
                    choice["delta"].pop("reasoning_content", None)
            return chunks
        if has_reasoning or not chunks:
            return chunks
        first = {
            **chunks[0],
            "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
        }
        first["choices"][0]["delta"]["reasoning_content"] = DEFAULT_REASONING
        return [first, *chunks]


def _schema(body: Mapping[str, Any]) -> str | None:
    """What breaks the Z.ai OpenAPI's ChatCompletionTextRequest."""
    for name in ("max_completion_tokens", "stream_options"):
        if name in body:
            return f"{name} is not a parameter of this API"
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
            return f"thinking.type must be enabled or disabled, got {thinking!r}"
        if "clear_thinking" in thinking and not isinstance(thinking["clear_thinking"], bool):
            return "thinking.clear_thinking must be a boolean"
    effort = body.get("reasoning_effort")
    for pattern, levels in EFFORTS.items():
        if (
            fnmatch.fnmatchcase(str(body["model"]).lower(), pattern)
            and effort is not None
            and effort not in levels
        ):
            return f"reasoning_effort must be one of {', '.join(levels)}, got {effort!r}"
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 1:
        return "stop takes at most 1 item"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and not 1 <= max_tokens <= MAX_TOKENS:
        return f"max_tokens {max_tokens}: valid range [1,{MAX_TOKENS}]"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return f"temperature {temperature} is outside [0, 1]"
    if body.get("tool_choice", "auto") != "auto":
        return f"tool_choice {body['tool_choice']!r}: only auto is supported"
    for tool in body.get("tools") or ():
        problem = _tool(tool)
        if problem is not None:
            return problem
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in ("text", "json_object"):
        return f"response_format {response_format.get('type')!r}: only text or json_object"
    if all(message.get("role") in ("system", "assistant") for message in body["messages"]):
        return "the messages cannot be only system or assistant ones"
    return None


def _tool(tool: object) -> str | None:
    if not isinstance(tool, dict) or tool.get("type") != "function" or set(tool) != {"type", "function"}:
        return f"a tool must be exactly {{type: function, function}}, got {tool!r}"
    function = tool["function"]
    if not isinstance(function, dict) or not FUNCTION_FIELDS.issuperset(function):
        extra = sorted(set(function) - FUNCTION_FIELDS) if isinstance(function, dict) else function
        return f"unknown function fields {extra!r}"
    if not TOOL_NAME.fullmatch(str(function.get("name"))):
        return f"function name {function.get('name')!r} breaks ^[a-zA-Z0-9_-]{{1,64}}$"
    if "description" not in function or "parameters" not in function:
        return f"function {function['name']} needs description and parameters"
    return None


HOST = ZhipuHost
