"""OpenRouter's ``/api/v1/chat/completions`` as the fake plays it (facts §3, checked 2026-12-03).

It refuses, in OpenRouter's error shape (``{"error": {"code": <status>, "message", "metadata"}}``):
a wrong key (401), an unknown model (400, ``availability.code: model_not_found``), a ``reasoning``
object that is not one (an unknown key, an effort outside the enum, ``effort`` with ``max_tokens``),
``reasoning_effort`` beside a ``reasoning.effort`` that differs, and turning reasoning off on a model
whose reasoning is mandatory (``MANDATORY``). Reasoning comes as ``reasoning`` and
``reasoning_details`` (message or delta), never as ``reasoning_content``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host
from tests.fake_iflow.replies import HttpError

Headers = Mapping[str, str]
Body = dict[str, Any] | None
Verdict = checks.Rejection | None

EFFORTS = ("max", "xhigh", "high", "medium", "low", "minimal", "none")
REASONING_KEYS = frozenset({"effort", "max_tokens", "exclude", "enabled", "summary"})
#: Models whose reasoning cannot be turned off here (``/models`` ``reasoning.mandatory``).
MANDATORY = ("z-ai/glm-5.3",)


def error_body(status: int, message: str, **metadata: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata:
        error["metadata"] = metadata
    return {"error": error}


def http_error(
    status: int, message: str, headers: Mapping[str, str] | None = None, **metadata: Any
) -> HttpError:
    """A scripted OpenRouter HTTP error: ``http_error(402, "Insufficient credits")``."""
    return HttpError(status, error_body(status, message, **metadata), dict(headers or {}))


def error_chunk(model: str, status: int, message: str, **metadata: Any) -> dict[str, Any]:
    """An error after the first token: a chunk with ``error`` and ``finish_reason: "error"`` (ERR)."""
    return {
        "id": "gen-err",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "provider": "Fake",
        **error_body(status, message, **metadata),
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }


def _refused(reason: str, status: int = 400, **extra: Any) -> checks.Rejection:
    body = error_body(status, reason)
    body["error"].update(extra)
    return checks.Rejection(reason, status, body)


def replayed(body: Mapping[str, Any]) -> list[object]:
    """What each assistant turn of a request carried back: its ``reasoning_details``, else its
    ``reasoning`` (or the ``reasoning_content`` alias), else None."""
    found: list[object] = []
    for message in body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "assistant":
            found.append(
                message.get("reasoning_details")
                or message.get("reasoning")
                or message.get("reasoning_content")
            )
    return found


class OpenRouter(Host):
    name = "openrouter"

    def judge(
        self, headers: Headers, body: Body, *, api_keys: Iterable[str], models: Iterable[str]
    ) -> Verdict:
        if checks.bearer_key(headers) not in set(api_keys):
            return _refused("No auth credentials found", 401)
        if (
            body is None
            or not isinstance(body.get("model"), str)
            or not isinstance(body.get("messages"), list)
        ):
            return _refused("Input required: specify model and messages")
        if body["model"] not in models:
            availability = {"code": "model_not_found"}
            return _refused(f"{body['model']} is not a valid model ID", availability=availability)
        return _reasoning(body)

    def shape_completion(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        choices = []
        for choice in body["choices"]:
            message = dict(choice["message"])
            reasoning = message.pop("reasoning_content", None)
            message["reasoning"] = reasoning
            if reasoning is not None:
                message["reasoning_details"] = [_detail(reasoning)]
            choices.append({**choice, "message": message, "native_finish_reason": choice["finish_reason"]})
        shaped = {**body, "provider": "Fake", "choices": choices}
        if isinstance(body.get("usage"), dict):
            shaped["usage"] = {**body["usage"], "cost": 0.0001, "is_byok": False}
        return shaped

    def shape_chunks(self, chunks: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        shaped = []
        for chunk in chunks:
            choices = []
            for choice in chunk["choices"]:
                delta = dict(choice["delta"])
                reasoning = delta.pop("reasoning_content", None)
                if reasoning is not None:
                    delta["reasoning"] = reasoning
                    delta["reasoning_details"] = [_detail(reasoning)]
                choices.append({**choice, "delta": delta})
            shaped.append({**chunk, "provider": "Fake", "choices": choices})
        return shaped


def _detail(text: str) -> dict[str, Any]:
    return {"type": "reasoning.text", "text": text, "signature": None, "format": "unknown", "index": 0}


def _reasoning(body: Mapping[str, Any]) -> checks.Rejection | None:
    reasoning = body.get("reasoning")
    shorthand = body.get("reasoning_effort")
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict) or set(reasoning) - REASONING_KEYS:
        return _refused(f"reasoning must be an object of {sorted(REASONING_KEYS)}, got {reasoning!r}")
    effort = reasoning.get("effort")
    if effort is not None and effort not in EFFORTS:
        return _refused(f"reasoning.effort must be one of {EFFORTS}, got {effort!r}")
    if effort is not None and "max_tokens" in reasoning:
        return _refused("Only one of reasoning.effort and reasoning.max_tokens may be specified")
    if shorthand is not None and effort is not None and shorthand != effort:
        return _refused("reasoning_effort and reasoning.effort differ")
    off = reasoning.get("enabled") is False or effort == "none"
    if off and body["model"] in MANDATORY:
        return _refused(f"Reasoning is mandatory for {body['model']} and cannot be disabled")
    return None


HOST = OpenRouter
