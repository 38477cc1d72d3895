"""The ``moonshot`` profile: Kimi on Moonshot AI's Open Platform (``api.moonshot.ai``, ``api.moonshot.cn``)
and on Kimi Code (``api.kimi.com/coding``).

Every rule below cites its source; all were checked 2026-12-03 (``docs/providers/moonshot.md`` has
the full table). A Kimi model is one of four kinds, by how its thinking is switched:

- ``kimi-k3*`` always thinks; its only control is ``reasoning_effort`` low/high/max (default max)
  and it takes no ``thinking`` field (kimi-help-center ``en-US/kimi-api/model-selection.md``: "You
  can't — K3 always thinks"; platform.kimi.ai/docs/guide/kimi-k3-1-pro-quickstart).
- ``kimi-k2.7-code*`` always thinks and refuses ``thinking: {"type": "disabled"}`` with a 400
  (platform.kimi.ai/docs/guide/use-kimi-k2-thinking-model; MoonshotAI/kimi-code#797): it is sent no
  ``thinking`` field at all, as the docs advise.
- ``kimi-k2.6``, ``kimi-k2.5`` and any other ``kimi-*`` think unless sent ``thinking: {"type":
  "disabled"}`` (use-kimi-k2-thinking-model; kimi-cli ``kosong/chat_provider/kimi.py`` sends only
  that field, never ``reasoning_effort`` with it).
- ``moonshot-v1-*`` never think (platform.kimi.ai/docs/api/models-overview).

>>> body = Moonshot().build_body({"model": "kimi-k2.6", "messages": [], "reasoning_effort": "none"}, None)
>>> body.body, body.thinking
({'model': 'kimi-k2.6', 'messages': [], 'thinking': {'type': 'disabled'}}, 'disabled')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import orjson

from iflow2api.dialects.intent import Intent
from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    OutOfCredit,
    UpstreamAuthError,
    UpstreamRateLimited,
)
from iflow2api.providers import openai_wire, rules
from iflow2api.providers.base import ChunkRewriter, ModelInfo, Prepared, Profile
from iflow2api.redact import redact

#: How a model's thinking is switched (see the module's docstring).
Kind = Literal["effort", "always", "switch", "none"]

#: K3's levels, least to most (kimi-help-center model-selection.md; a CONFLICT with launch-week
#: relays that said "max" only, settled for the help center's three).
K3_EFFORTS = ("low", "high", "max")

#: Sampling fields K2.5, K2.6, K2.7-code and K3 fix and answer a 400 for when changed ("invalid
#: temperature: only 1 is allowed for this model"): platform.kimi.ai/docs/api/models-overview.md
#: "Cannot be modified"; ltmoerdani/opencode-copilot-chat#45.
FIXED_SAMPLING = ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty")

_MILLION = 1_048_576
_K2_CONTEXT = 262_144

#: The ``error.type`` of a Kimi error body → the status it stands for when it comes inside a 200
#: (kimi-help-center ``en-US/kimi-api/error-codes.md``).
_STATUS_OF_TYPE = {
    "content_filter": 400,
    "invalid_request_error": 400,
    "invalid_authentication_error": 401,
    "incorrect_api_key_error": 401,
    "permission_denied_error": 403,
    "resource_not_found_error": 404,
    "exceeded_current_quota_error": 429,
    "rate_limit_reached_error": 429,
    "engine_overloaded_error": 429,
}
#: "…please try again after 1 seconds" (LLM-Red-Team/kimi-cc#16): the wait a 429 names in words.
_TRY_AGAIN_AFTER = re.compile(r"try again after (\d+(?:\.\d+)?) ?s", re.IGNORECASE)
#: The context-too-long messages of error-codes.md and kimi.com/code's error reference.
_TOO_LONG = re.compile(r"token length too long|exceeded model token limit|exceeds limit", re.IGNORECASE)
#: Without a Retry-After or a wait in the message: the gateway's usual first rest.
_DEFAULT_WAIT = 10.0


def kind_of(model: str) -> Kind:
    """How ``model``'s thinking is switched.

    >>> [kind_of(m) for m in ("kimi-k3.1-pro", "kimi-k2.7-code-highspeed", "kimi-k2.6", "moonshot-v1-8k")]
    ['effort', 'always', 'switch', 'none']
    """
    lower = model.lower()
    if lower.startswith("kimi-k3"):
        return "effort"
    if lower.startswith("kimi-k2.7-code"):
        return "always"
    if lower.startswith("moonshot-v1"):
        return "none"
    return "switch"


def has_fixed_sampling(model: str) -> bool:
    """Whether ``model`` fixes its sampling (K2.5 and later; the legacy and preview models do not)."""
    return re.match(r"kimi-k(?:2\.[5-9]|3)", model.lower()) is not None


def refuses_forced_tools(model: str) -> bool:
    """Whether ``model`` refuses ``tool_choice`` ``required`` or a named function while it thinks:
    every K2.x does, K3 does not (UKGovernmentBEIS/inspect_ai#5152; docs.oxen.ai kimi-k3)."""
    return kind_of(model) in ("always", "switch")


class Moonshot(Profile):
    name: ClassVar[str] = "moonshot"
    title: ClassVar[str] = "Kimi (Moonshot AI)"
    # kimi-help-center en-US/kimi-api/api-troubleshooting.md: .ai international, .cn China (keys
    # work on their own platform's host only); api.kimi.com/coding/v1 is Kimi Code, keys of its own.
    base_url: ClassVar[str] = "https://api.moonshot.ai/v1"
    hosts: ClassVar[tuple[str, ...]] = ("api.moonshot.ai", "api.moonshot.cn", "api.kimi.com")
    # platform.kimi.ai/docs/api/models-overview.md and the help center (output: context - prompt).
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType(
        {
            "kimi-k3": ModelInfo(_MILLION, _MILLION),
            "kimi-k3.1-pro": ModelInfo(_MILLION, _MILLION),
            "kimi-k3.1-pro-highspeed": ModelInfo(_MILLION, _MILLION),
            "kimi-k2.7-code": ModelInfo(_K2_CONTEXT, _K2_CONTEXT),
            "kimi-k2.7-code-highspeed": ModelInfo(_K2_CONTEXT, _K2_CONTEXT),
            "kimi-k2.6": ModelInfo(_K2_CONTEXT, _K2_CONTEXT),
            "kimi-k2.5": ModelInfo(_K2_CONTEXT, _K2_CONTEXT),
            "moonshot-v1-8k": ModelInfo(8_192, 8_192),
            "moonshot-v1-32k": ModelInfo(32_768, 32_768),
            "moonshot-v1-128k": ModelInfo(131_072, 131_072),
        }
    )
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # What an assistant tool-call turn with no known reasoning carries while thinking. Not
            # documented by Moonshot; "" is accepted by reports (openclaw/openclaw#74846), so are
            # "tool call" (farion1231/cc-switch#2365) and "." (spacedriveapp/spacebot#364).
            "reasoning_filler": "",
            # Tool ``strict``: UNDOCUMENTED either way, so it is dropped unless told otherwise.
            "drop_tool_strict": True,
            # A forced tool_choice while a switchable K2.x thinks: "auto" sends auto (the fix for
            # k2.7-code, which cannot stop thinking), "think-off" keeps the choice and switches
            # thinking off for that request (the fix the reports give for k2.6).
            "forced_tool_choice": "auto",
            # K2.6's Preserved Thinking (``thinking.keep: "all"``, use-kimi-k2-thinking-model):
            # off by default, as on the host.
            "preserved_thinking": False,
        }
    )

    def __init__(
        self, *, thinking_default: bool | None = None, options: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(thinking_default=thinking_default, options=options)
        if self.option_values["forced_tool_choice"] not in ("auto", "think-off"):
            raise ValueError("provider_options: moonshot.forced_tool_choice is auto or think-off")

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        model = str(request.get("model", ""))
        kind = kind_of(model)
        intent = self._intent(request, intent)
        # One thinking control at most, and ours: "cannot specify both 'thinking' and
        # 'reasoning_effort'" (NousResearch/hermes-agent#34208).
        body = rules.without(openai_wire.build_body(request), ("thinking", "reasoning_effort"))
        # max_tokens is deprecated for max_completion_tokens (platform.kimi.ai/docs/api/chat;
        # kimi-cli _normalize_generation_kwargs renames it).
        body = rules.renamed(body, "max_tokens", "max_completion_tokens")
        if has_fixed_sampling(model):
            body = rules.without(body, FIXED_SAMPLING)
        if self.option_values["drop_tool_strict"] and isinstance(body.get("tools"), list):
            body = {**body, "tools": rules.without_tool_strict(body["tools"])}
        thinks, control, said = self._thinking(kind, intent, model)
        if thinks and refuses_forced_tools(model) and rules.forces_a_tool(body.get("tool_choice")):
            if kind == "switch" and self.option_values["forced_tool_choice"] == "think-off":
                thinks, control, said = False, {"thinking": {"type": "disabled"}}, "disabled"
            else:
                # "tool_choice 'required' is incompatible with thinking enabled" (inspect_ai#5152).
                body = {**body, "tool_choice": "auto"}
        body = {**body, **control}
        if thinks and isinstance(body.get("messages"), list):
            # "thinking is enabled but reasoning_content is missing in assistant tool call message
            # at index N" (iOfficeAI/AionUi#2746): every tool-call turn carries its reasoning.
            filler = str(self.option_values["reasoning_filler"])
            body["messages"] = rules.with_reasoning_on_tool_calls(body["messages"], filler)
        return Prepared(body, thinking=said)

    def _intent(self, request: dict[str, Any], intent: Intent | None) -> Intent:
        """The client's intent. A chat client's own ``thinking`` switch (the OpenAI SDK's
        ``extra_body``, as Kimi's docs show it) counts as one when it stated no other, before the
        ``thinking_default`` setting does."""
        own = request.get("thinking")
        stated = (intent is not None and intent.mode != "default") or "reasoning_effort" in request
        if isinstance(own, dict) and not stated:
            switched = {"disabled": Intent("off"), "enabled": Intent("on")}.get(str(own.get("type")))
            if switched is not None:
                return switched
        return self.intent(request, intent)

    def _thinking(self, kind: Kind, intent: Intent, model: str) -> tuple[bool, dict[str, Any], str | None]:
        """Whether the model will think, the fields that say so, and that for the header."""
        if kind == "none":
            return False, {}, None
        if kind == "always":
            # Asked off, it still thinks: clamped to the one way it runs, by sending nothing.
            return True, {}, "enabled" if intent.mode != "default" else None
        if kind == "effort":
            if intent.mode == "default" or (intent.mode == "adaptive" and intent.effort is None):
                return True, {}, None  # nothing sent: no header, as for every profile
            # Off is clamped to the least K3 offers: it cannot stop thinking.
            effort = "low" if intent.mode == "off" else rules.nearest_effort(intent.effort, K3_EFFORTS)
            return True, {"reasoning_effort": effort}, f"reasoning_effort={effort}"
        if intent.mode == "off":
            return False, {"thinking": {"type": "disabled"}}, "disabled"
        keep = self.option_values["preserved_thinking"] and model.lower().startswith("kimi-k2.6")
        if intent.mode == "default" and not keep:
            return True, {}, None
        thinking: dict[str, Any] = {"type": "enabled", **({"keep": "all"} if keep else {})}
        return True, {"thinking": thinking}, "enabled; keep=all" if keep else "enabled"

    def rewriter(self, request: dict[str, Any]) -> ChunkRewriter | None:
        return UsageRewriter(self)

    def normalize_completion(self, completion: dict[str, Any]) -> bool:
        usage = completion.get("usage")
        if not isinstance(usage, dict):
            return False
        normalized = self.normalize_usage(usage)
        if normalized is usage:
            return False
        completion["usage"] = normalized
        return True

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """Kimi's flat ``cached_tokens`` (kimi-cli ``kimi.py`` reads it there, and in
        ``prompt_tokens_details``) moved to where OpenAI keeps it.

        >>> Moonshot().normalize_usage({"prompt_tokens": 9, "cached_tokens": 8})
        {'prompt_tokens': 9, 'prompt_tokens_details': {'cached_tokens': 8}}
        """
        cached = usage.get("cached_tokens")
        if "cached_tokens" not in usage:
            return usage
        out = {key: value for key, value in usage.items() if key != "cached_tokens"}
        details = out.get("prompt_tokens_details")
        details = dict(details) if isinstance(details, dict) else {}
        if isinstance(cached, int) and not isinstance(cached, bool):
            details.setdefault("cached_tokens", cached)
            out["prompt_tokens_details"] = details
        return out

    def business_error(self, payload: object) -> GatewayError | None:
        # Errors inside a 200 are UNDOCUMENTED; one in Kimi's shape is read as its HTTP twin.
        if openai_wire.business_error(payload) is None or not isinstance(payload, dict):
            return None
        error = payload["error"]
        status = _STATUS_OF_TYPE.get(error.get("type", ""), 500) if isinstance(error, dict) else 500
        return self.http_error(status, orjson.dumps(payload), None, None)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        """Kimi's error body is ``{"error": {"type", "message"}}`` (platform.kimi.ai/docs/api/errors.md);
        its ``type`` decides, not the status: the balance error is documented as 403 in one place
        and 429 in another (error-codes.md vs kimi.com/help/kimi-api/api-error-codes)."""
        kind, message = _error_of(body)
        said = f"Kimi answered {status}: {message or f'HTTP {status}'}"
        if kind == "exceeded_current_quota_error":
            # Topping up is a person's job: the account rests until then.
            return OutOfCredit(said + " The account's balance is spent; recharge it on the Kimi platform.")
        if kind in ("rate_limit_reached_error", "engine_overloaded_error") or status == 429:
            match = _TRY_AGAIN_AFTER.search(message)
            wait = retry_after if retry_after is not None else float(match[1]) if match else None
            error = UpstreamRateLimited(said, retry_after=_DEFAULT_WAIT if wait is None else wait)
            return error if wait is None else error.asked_to_wait(wait)
        if kind in ("invalid_authentication_error", "incorrect_api_key_error") or status == 401:
            return UpstreamAuthError(
                said + " Check the account's key: platform.kimi.ai keys work on api.moonshot.ai only,"
                " platform.kimi.com keys on api.moonshot.cn, Kimi Code keys on api.kimi.com."
            )
        if kind == "permission_denied_error":
            return AccountBlocked(said, code="permission_denied")
        if kind == "resource_not_found_error" or status == 404:
            return ModelNotFound(said)
        if kind == "content_filter":
            return InvalidRequest(said, code="content_filter", status=400)
        if _TOO_LONG.search(message):
            return ContextTooLong(said)
        return openai_wire.http_error(status, body, retry_after=retry_after, prefix="Kimi answered ")


class UsageRewriter:
    """A Kimi stream with usage where the gateway reads it: Kimi puts it inside ``choices[0].usage``
    of the finish chunk (kimi-cli ``tests/test_kimi_stream_usage.py``), and its cached tokens flat;
    they go to the chunk's own ``usage``, in OpenAI's shape. Every other chunk passes as it came."""

    __slots__ = ("_profile",)

    def __init__(self, profile: Profile) -> None:
        self._profile = profile

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            choices = [None]
        first, usage = choices[0], chunk.get("usage")
        if isinstance(first, dict) and isinstance(first.get("usage"), dict):
            chunk = {**chunk, "choices": [rules.without(first, ("usage",)), *choices[1:]]}
            usage = usage if isinstance(usage, dict) else first["usage"]
        if isinstance(usage, dict):
            normalized = self._profile.normalize_usage(usage)
            if normalized is not chunk.get("usage"):
                chunk = {**chunk, "usage": normalized}
        return [chunk]

    def finish(self) -> list[dict[str, Any]]:
        return []


def _error_of(body: bytes) -> tuple[str, str]:
    """The ``error.type`` and (masked) ``error.message`` of a Kimi error body; Kimi Code wraps the
    same in an outer ``"type": "error"`` (Kilo-Org/kilocode#10986)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", redact(body[:300].decode("utf-8", "replace"))
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return "", redact(error)
    if not isinstance(error, dict):
        return "", ""
    kind = error.get("type")
    return (kind if isinstance(kind, str) else ""), redact(str(error.get("message") or ""))


PROFILE = Moonshot
