"""The ``openrouter`` profile: OpenRouter (``openrouter.ai/api/v1``), one API in front of many hosts.

Sources, checked 2026-12-03 (the facts with their citations are in the team's
``facts/dashscope_siliconflow_openrouter.md`` §3), all from OpenRouter's docs
(``OpenRouterTeam/docs``): openrouter.ai/docs/guides/best-practices/reasoning-tokens ("RT"),
/docs/api/reference/errors-and-debugging ("ERR"), /docs/api/reference/overview,
/docs/guides/best-practices/prompt-caching ("PC").

Thinking. One ``reasoning`` object (RT): ``effort`` (none…max), or ``max_tokens`` (Anthropic's budget),
or ``enabled``; ``{"enabled": false}`` turns it off, except on a model whose reasoning is mandatory
(``/models`` says so per model; here the ``mandatory_reasoning`` option lists them), where "off" is
clamped: nothing is sent. ``reasoning_effort`` is folded into it (the two may not disagree).

Reasoning out. ``reasoning`` (text) and ``reasoning_details`` (typed items, some encrypted) on the
message or delta (RT): the text becomes ``reasoning_content``; ``reasoning_details`` stay as they
came, so a client that sends them back sends them verbatim.

Reasoning back. ``reasoning_details`` unmodified when the turn has them, else the text as
``reasoning`` (RT § Preserving Reasoning; ``reasoning_content`` is only an alias of it).

Caching. ``session_id`` / ``prompt_cache_key`` pass as the client sent them (PC); the
``provider_order`` option pins the hosts (``provider.order``), which also ends sticky routing (PC).

Errors. ``{"error": {"code", "message", "metadata"}}`` with the status as ``code`` (ERR); the routed
host's own words in ``metadata.raw``; 402 is spent credit; after the first token an error comes as a
chunk with ``finish_reason: "error"``, and a whole answer may carry ``choices[].error``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import orjson

from iflow2api import errors
from iflow2api.dialects.intent import Intent
from iflow2api.errors import GatewayError
from iflow2api.providers import openai_wire
from iflow2api.providers.base import ChunkRewriter, ModelInfo, Prepared, Profile
from iflow2api.providers.rules import renamed, without
from iflow2api.redact import redact

#: ``error.metadata.error_type`` (ERR) → the status it stands for, where that decides the error.
_STATUS_OF_TYPE = {
    "context_length_exceeded": 400,
    "max_tokens_exceeded": 400,
    "invalid_request": 400,
    "authentication": 401,
    "payment_required": 402,
    "not_found": 404,
    "rate_limit_exceeded": 429,
    "provider_unavailable": 502,
    "provider_overloaded": 503,
    "server": 500,
    "timeout": 504,
}


def reasoning_text(message: Mapping[str, Any]) -> str | None:
    """The readable reasoning of a message or delta: ``reasoning``, else the text and summaries of
    its ``reasoning_details`` (encrypted items have none).

    >>> reasoning_text({"reasoning_details": [{"type": "reasoning.summary", "summary": "short"}]})
    'short'
    """
    if isinstance(message.get("reasoning"), str):
        return str(message["reasoning"])
    details = message.get("reasoning_details")
    if not isinstance(details, list):
        return None
    texts = [
        item.get("text") if item.get("type") == "reasoning.text" else item.get("summary")
        for item in details
        if isinstance(item, dict)
    ]
    return "".join(text for text in texts if isinstance(text, str)) or None


def _with_reasoning_content(message: dict[str, Any]) -> dict[str, Any] | None:
    """``message`` with its reasoning as ``reasoning_content`` (and no ``reasoning``), or None when
    there is nothing to change."""
    if "reasoning" not in message and "reasoning_details" not in message:
        return None
    text = reasoning_text(message)
    out = without(message, ["reasoning"])
    if text and not isinstance(message.get("reasoning_content"), str):
        out = {**out, "reasoning_content": text}
    return out if out != message else None


class OpenRouterRewriter:
    """OpenRouter's chunks in the gateway's shape: ``delta.reasoning`` as ``reasoning_content``, and
    an error chunk (``error``, ``finish_reason: "error"``) without choices, so it is judged an error."""

    __slots__ = ()

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return [chunk]
        if isinstance(chunk.get("error"), dict) or any(
            isinstance(choice, dict) and choice.get("finish_reason") == "error" for choice in choices
        ):
            error = chunk.get("error")
            if not isinstance(error, dict):
                error = {"code": 502, "message": "The answer ended with finish_reason error."}
            return [{**without(chunk, ["choices"]), "error": error}]
        rewritten = [_rewritten_choice(choice) for choice in choices]
        if all(new is None for new in rewritten):
            return [chunk]
        new_choices = [old if new is None else new for old, new in zip(choices, rewritten, strict=True)]
        return [{**chunk, "choices": new_choices}]

    def finish(self) -> list[dict[str, Any]]:
        return []


def _rewritten_choice(choice: object) -> dict[str, Any] | None:
    if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
        return None
    delta = _with_reasoning_content(choice["delta"])
    return None if delta is None else {**choice, "delta": delta}


def error_of(status: int, error: Mapping[str, Any], retry_after: float | None, prefix: str) -> GatewayError:
    """The gateway's error for OpenRouter's ``error`` object, sent with ``status`` (ERR).

    >>> error_of(402, {"code": 402, "message": "Insufficient credits"}, None, "").code
    'insufficient_quota'
    """
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    message = prefix + _message(error, metadata)
    kind = metadata.get("error_type")
    status = _STATUS_OF_TYPE.get(kind, status) if isinstance(kind, str) else status
    availability = error.get("availability") or metadata.get("availability")
    unavailable = availability.get("code") if isinstance(availability, dict) else None
    if isinstance(availability, dict) and retry_after is None:
        wait = availability.get("retry_after")
        retry_after = float(wait) if isinstance(wait, int | float) and not isinstance(wait, bool) else None
    found: GatewayError
    if status == 402:
        found = errors.OutOfCredit(message)
    elif status == 401:
        found = errors.UpstreamAuthError(message + " Check the account's api_key.")
    elif unavailable in ("model_not_found", "no_endpoints", "model_deprecated") or status == 404:
        found = errors.ModelNotFound(message)
    elif kind == "context_length_exceeded":
        found = errors.ContextTooLong(message)
    elif status == 429:
        found = errors.UpstreamRateLimited(message, retry_after=10.0 if retry_after is None else retry_after)
    elif status == 403:
        # A guardrail or moderation refused this input (ERR): another account would refuse it too.
        found = errors.InvalidRequest(message, code="content_flagged", status=403)
    elif status in (400, 413, 422):
        found = errors.InvalidRequest(message, status=status)
    else:
        found = errors.UpstreamError(message)  # 408, 5xx: the routed host failed
    if retry_after is not None and status in (429, 503):
        found.asked_to_wait(retry_after)
    return found


def _message(error: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """OpenRouter's message, with the routed host's own words from ``metadata.raw`` (often the
    only useful part: "Provider returned error")."""
    message = str(error.get("message") or "error")
    raw = metadata.get("raw")
    inner: object = raw
    if isinstance(raw, str):
        try:
            inner = orjson.loads(raw)
        except orjson.JSONDecodeError:
            inner = raw
    if isinstance(inner, dict):
        nested = inner.get("error")
        inner = nested.get("message") if isinstance(nested, dict) else nested or inner.get("message")
    if isinstance(inner, str) and inner:
        provider = metadata.get("provider_name")
        message += f" ({provider}: {inner})" if isinstance(provider, str) else f" ({inner})"
    return redact(message)


class OpenRouter(Profile):
    """OpenRouter's ``/api/v1/chat/completions``."""

    name: ClassVar[str] = "openrouter"
    title: ClassVar[str] = "OpenRouter"
    hosts: ClassVar[tuple[str, ...]] = ("openrouter.ai",)
    base_url: ClassVar[str] = "https://openrouter.ai/api/v1"
    # Models and their limits come from the account's /models (every routed host differs); the one
    # the facts quote, for the context display.
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType(
        {"deepseek/deepseek-v4-flash": ModelInfo(1_048_576)}
    )
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # Models whose reasoning cannot be turned off (/models ``reasoning.mandatory``; GLM-5.3
            # always thinks: openrouter.ai/z-ai/glm-5.3). Comma-separated fnmatch patterns.
            "mandatory_reasoning": "z-ai/glm-5.3*",
            # Hosts to route to, in order (``provider.order``), comma-separated; empty: OpenRouter's choice.
            "provider_order": "",
            # With provider_order, whether other hosts may serve when those fail.
            "allow_fallbacks": True,
            # Ask for reasoning without its text (``reasoning.exclude``).
            "exclude_reasoning": False,
        }
    )

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        body = without(openai_wire.build_body(request), ["reasoning_effort"])
        body = dict(renamed(body, "max_tokens", "max_completion_tokens"))  # max_tokens is deprecated
        body["messages"] = _with_reasoning_back(body["messages"])
        pinned = str(self.option_values["provider_order"]).split(",")
        order = [name.strip() for name in pinned if name.strip()]
        client_provider = body.get("provider") if isinstance(body.get("provider"), dict) else {}
        assert isinstance(client_provider, dict)
        if order and "order" not in client_provider:
            allow = bool(self.option_values["allow_fallbacks"])
            body["provider"] = {**client_provider, "order": order, "allow_fallbacks": allow}
        wanted = self.intent(request, intent)
        if wanted.mode == "default":
            return Prepared(body)  # the model's default, or the client's own ``reasoning`` object
        reasoning, said = self._reasoning(body["model"], wanted)
        if reasoning is None:
            body.pop("reasoning", None)
        else:
            body["reasoning"] = reasoning
        return Prepared(body, thinking=said)

    def _reasoning(self, model: str, intent: Intent) -> tuple[dict[str, Any] | None, str]:
        """The ``reasoning`` object for ``intent`` and what the header says of it."""
        if intent.mode == "off":
            if self._mandatory(model):
                return None, "mandatory (not turned off)"
            return {"enabled": False}, "disabled"
        reasoning: dict[str, Any]
        if intent.budget is not None:
            reasoning, said = {"max_tokens": intent.budget}, f"max_tokens={intent.budget}"
        elif intent.effort is not None:
            reasoning, said = {"effort": intent.effort}, f"effort={intent.effort}"
        else:
            reasoning, said = {"enabled": True}, "enabled"
        if self.option_values["exclude_reasoning"]:
            reasoning["exclude"] = True
            said += "; exclude"
        return reasoning, said

    def _mandatory(self, model: str) -> bool:
        patterns = [pattern.strip() for pattern in str(self.option_values["mandatory_reasoning"]).split(",")]
        return any(pattern and fnmatch.fnmatchcase(model.lower(), pattern.lower()) for pattern in patterns)

    def rewriter(self, request: dict[str, Any]) -> ChunkRewriter | None:
        return OpenRouterRewriter()

    def normalize_completion(self, completion: dict[str, Any]) -> bool:
        changed = False
        for choice in completion.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            new = _with_reasoning_content(message) if isinstance(message, dict) else None
            if new is not None:
                choice["message"] = new
                changed = True
        return changed

    def business_error(self, payload: object) -> GatewayError | None:
        if not isinstance(payload, dict):
            return None
        error = payload.get("error")
        if not isinstance(error, dict):
            # A whole answer whose choice failed (ERR: ``choices[].error``).
            errors = [
                choice["error"]
                for choice in payload.get("choices") or ()
                if isinstance(choice, dict) and isinstance(choice.get("error"), dict)
            ]
            error = errors[0] if errors else None
        if not isinstance(error, dict) or not error:
            return openai_wire.business_error(payload)
        code = error.get("code")
        status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else 502
        return error_of(status, error, None, "OpenRouter reported an error in its answer: ")

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return openai_wire.http_error(status, body, retry_after=retry_after)
        return error_of(status, error, retry_after, f"OpenRouter answered {status}: ")


def _with_reasoning_back(messages: list[Any]) -> list[Any]:
    """Each assistant turn's reasoning as OpenRouter reads it: its ``reasoning_details`` when it has
    them (they must come back unmodified), else the text as ``reasoning``."""
    out: list[Any] | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        reasoning = message.get("reasoning_content")
        if not isinstance(reasoning, str):
            continue
        turn = without(message, ["reasoning_content"])
        if reasoning and not isinstance(turn.get("reasoning_details"), list) and "reasoning" not in turn:
            turn["reasoning"] = reasoning
        if out is None:
            out = list(messages)
        out[index] = turn
    return messages if out is None else out


PROFILE = OpenRouter
