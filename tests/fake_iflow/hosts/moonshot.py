"""A fake Kimi (Moonshot AI's Open Platform): what it refuses and how it answers.

Built from /work/wt11/facts/deepseek_moonshot.md §B (checked 2026-12-03): Kimi's 400s for a tool
loop without reasoning, changed fixed sampling, a forced ``tool_choice`` while thinking and
``thinking: disabled`` on a model that always thinks; its error body ``{"error": {"type",
"message"}}``; reasoning as ``reasoning_content``; streamed usage inside ``choices[0].usage`` with
cached tokens flat. Where Kimi is lenient but a gateway should not lean on it, the fake is stricter
and says so: ``max_tokens`` (deprecated), ``reasoning_effort`` on a model without levels and a
``thinking`` field sent to K3 are refused here, and tool ``strict`` (undocumented) too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host
from tests.fake_iflow.replies import HttpError

FIXED = {"temperature": None, "top_p": 0.95, "n": 1, "presence_penalty": 0, "frequency_penalty": 0}
K3_EFFORTS = ("low", "high", "max")
Headers = Mapping[str, str]
Body = dict[str, Any] | None
Verdict = checks.Rejection | None


def error_body(kind: str, message: str) -> dict[str, Any]:
    """Kimi's error body (platform.kimi.ai/docs/api/errors.md): no ``code``, no ``param``."""
    return {"error": {"type": kind, "message": message}}


def error(status: int, kind: str, message: str, retry_after: int | None = None) -> HttpError:
    """A scripted Kimi error reply."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return HttpError(status, error_body(kind, message), headers)


#: kimi-help-center error-codes.md and Alishahryar1/free-claude-code#1223.
QUOTA_SPENT = error(
    429,
    "exceeded_current_quota_error",
    "Your account org-fake <ak-fake> is suspended due to insufficient balance, please recharge your"
    " account or check your plan and billing details",
)


def rate_limited(retry_after: int | None = None) -> HttpError:
    message = (
        "Your account org-fake request reached organization max RPM: 3, please try again after 1 seconds"
    )
    return error(429, "rate_limit_reached_error", message, retry_after)


def _reject(status: int, kind: str, message: str) -> checks.Rejection:
    return checks.Rejection(message, status, error_body(kind, message))


def _invalid(message: str) -> checks.Rejection:
    return _reject(400, "invalid_request_error", message)


def always_thinks(model: str) -> bool:
    return model.startswith(("kimi-k3", "kimi-k2.7-code"))


def thinks(body: Mapping[str, Any]) -> bool:
    """Whether the host thinks for this request."""
    model = str(body["model"])
    if model.startswith("moonshot-v1"):
        return False
    thinking = body.get("thinking")
    return always_thinks(model) or not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


class Moonshot(Host):
    name = "moonshot"
    # Usage rides inside the finish chunk's choices[0] (kimi-cli tests/test_kimi_stream_usage.py).
    separate_usage = False

    def judge(
        self, headers: Headers, body: Body, *, api_keys: Iterable[str], models: Iterable[str]
    ) -> Verdict:
        key = checks.bearer_key(headers)
        if key is None or key not in api_keys:
            return _reject(401, "invalid_authentication_error", "Invalid Authentication")
        if body is None:
            return _invalid("Invalid request: the body is not a JSON object")
        problem = checks.judge_openai(headers, body, api_keys=api_keys, models=[str(body.get("model"))])
        if problem is not None:
            return _invalid(f"Invalid request: {problem.reason}")
        if body["model"] not in models:
            message = "Model not found, or this account does not have permission to access the model"
            return _reject(404, "resource_not_found_error", message)
        for rule in (_thinking, _sampling, _fields, _tools, _tool_choice, _reasoning_back):
            said = rule(body)
            if said is not None:
                return _invalid(said)
        return None

    def shape_completion(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        message = body["choices"][0]["message"]
        if not thinks(request):
            message.pop("reasoning_content", None)
        if isinstance(body.get("usage"), dict):
            body["usage"] = _flat_cache(body["usage"])
        return body

    def shape_chunks(self, chunks: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        thinking = thinks(request)
        for chunk in chunks:
            for choice in chunk["choices"]:
                if not thinking:
                    choice["delta"].pop("reasoning_content", None)
            usage = chunk.pop("usage", None)
            if isinstance(usage, dict) and chunk["choices"]:
                chunk["choices"][0]["usage"] = _flat_cache(usage)
        return chunks


def _flat_cache(usage: dict[str, Any]) -> dict[str, Any]:
    """Cached tokens where Kimi writes them: ``usage.cached_tokens`` (kimi-cli ``kimi.py``)."""
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict) or "cached_tokens" not in details:
        return usage
    flat = {k: v for k, v in usage.items() if k != "prompt_tokens_details"}
    return {**flat, "cached_tokens": details["cached_tokens"]}


def _thinking(body: Mapping[str, Any]) -> str | None:
    model = str(body["model"])
    thinking = body.get("thinking")
    if thinking is not None and "reasoning_effort" in body:
        return "cannot specify both 'thinking' and 'reasoning_effort'"
    if model.startswith("kimi-k3"):
        if thinking is not None:
            return f"fake Kimi: {model} takes reasoning_effort, not thinking"
        effort = body.get("reasoning_effort", "max")
        return None if effort in K3_EFFORTS else f"fake Kimi: invalid reasoning_effort {effort!r}"
    if "reasoning_effort" in body:
        return f"fake Kimi: {model} has no reasoning_effort; it is switched with thinking"
    if thinking is None:
        return None
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        return f"invalid thinking: {thinking!r}"
    if model.startswith("kimi-k2.7-code"):
        if thinking["type"] != "enabled" or thinking.get("keep", "all") != "all":
            return "invalid thinking: only type=enabled is allowed for this model"
    elif "keep" in thinking and not (model.startswith("kimi-k2.6") and thinking["keep"] in (None, "all")):
        return f"invalid thinking: keep is not supported for {model}"
    return None


def _sampling(body: Mapping[str, Any]) -> str | None:
    model = str(body["model"])
    if not model.startswith(("kimi-k2.5", "kimi-k2.6", "kimi-k2.7", "kimi-k3")):
        return None
    for name, fixed in FIXED.items():
        if name not in body:
            continue
        expected = (1 if thinks(body) else 0.6) if fixed is None else fixed
        if body[name] != expected:
            return f"invalid {name}: only {expected} is allowed for this model"
    return None


def _fields(body: Mapping[str, Any]) -> str | None:
    if "max_tokens" in body:
        return "fake Kimi: max_tokens is deprecated, send max_completion_tokens"
    return None


def _tools(body: Mapping[str, Any]) -> str | None:
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        if "strict" in function:
            return "fake Kimi: tools.function.strict is not documented by Kimi"
        if (function.get("parameters") or {"type": "object"}).get("type") != "object":
            return 'tools.function.parameters.type is required and must be "object"'
    return None


def _tool_choice(body: Mapping[str, Any]) -> str | None:
    # K3 accepts a forced choice; every K2.x refuses it while thinking (inspect_ai#5152).
    if str(body["model"]).startswith("kimi-k3") or not thinks(body):
        return None
    choice = body.get("tool_choice", "auto")
    if choice == "required":
        return "tool_choice 'required' is incompatible with thinking enabled"
    if isinstance(choice, dict):
        return "tool_choice 'specified' is incompatible with thinking enabled"
    return None


def _reasoning_back(body: Mapping[str, Any]) -> str | None:
    if not thinks(body):
        return None
    for index, message in enumerate(body["messages"]):
        if (
            message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
        ):
            missing = "thinking is enabled but reasoning_content is missing in assistant tool call message"
            return f"{missing} at index {index}"
    return None


HOST = Moonshot
