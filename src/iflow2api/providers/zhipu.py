"""The ``zhipu`` profile: GLM on Zhipu BigModel (``open.bigmodel.cn``) and Z.ai (``api.z.ai``).

Both hosts speak the same API (the "paas v4" Chat Completions), each on two endpoints: the
pay-as-you-go one (``…/api/paas/v4``) and the GLM Coding Plan's (``…/api/coding/paas/v4``); a key
works on its own region and plan only. Every rule below names its source; all were checked
2026-12-03 (``docs/providers/zhipu.md`` has the table):

- [zai-api] the Z.ai OpenAPI, a copy of https://docs.z.ai/api-reference/llm/chat-completion
- [zai-thinking] https://docs.z.ai/guides/capabilities/thinking-mode (and its BigModel twin,
  https://docs.bigmodel.cn/cn/guide/capabilities/thinking-mode)
- [bm-glm-new] https://docs.bigmodel.cn/cn/guide/start/migrate-to-glm-new (GLM-5.2's effort)
- [zai-codes] https://docs.z.ai/api-reference/api-code (business error codes)
- [glm-5.3] https://openrouter.ai/z-ai/glm-5.3 and the reports THU-MAIC/OpenMAIC#1400,
  NousResearch/hermes-agent#85890 (GLM-5.3 always thinks: "disabled" gets 400/1210)

Thinking, per model (``Family``): GLM-5.3 always thinks and takes ``reasoning_effort``; GLM-5.2
takes ``thinking.type`` and ``reasoning_effort``; GLM-4.5 to 5.1 take ``thinking.type`` only; older
GLMs cannot think. Earlier reasoning goes back as ``reasoning_content`` on the assistant turns
(interleaved thinking, [zai-thinking]); the gateway's reasoning store has put back what the client
dropped. Answers already carry ``reasoning_content`` and OpenAI's usage shape, so they pass as they
come, but for the finish reasons that mean a failure.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import orjson

from iflow2api import written
from iflow2api.dialects.intent import Intent
from iflow2api.errors import (
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    OutOfCredit,
    UpstreamAuthError,
    UpstreamRateLimited,
)
from iflow2api.providers import openai_wire
from iflow2api.providers.base import Account, ModelInfo, Outgoing, Prepared, Profile
from iflow2api.providers.rules import nearest_effort, renamed, without
from iflow2api.redact import redact

Family = Literal["always", "effort", "switch", "none"]

#: How each model thinks, first match wins (``fnmatch``, lower case). "always": thinks whatever it
#: is told, takes ``reasoning_effort`` ([glm-5.3]); "effort": ``thinking.type`` and
#: ``reasoning_effort`` ([bm-glm-new]); "switch": ``thinking.type`` only ([zai-api] ChatThinking;
#: effort is neither validated nor used, stefandevo/glm-acp-agent#74); "none": ``thinking`` applies
#: "only [to] GLM-4.5 series and higher" ([zai-api]). An unknown GLM is taken for a "switch" one.
FAMILIES: tuple[tuple[str, Family], ...] = (
    ("glm-5.3*", "always"),
    ("glm-5.2*", "effort"),
    ("glm-4-*", "none"),
    ("glm-4", "none"),
    ("glm-3*", "none"),
    ("glm-ocr*", "none"),
    ("glm-4v*", "none"),
)

#: Finish reasons that end an answer in failure ([zai-api] ChatCompletionResponse), as the business
#: code that says the same (the error table below): "sensitive" is moderation's block (1301),
#: "model_context_window_exceeded" a context that ran out (1261). ``network_error`` the gateway
#: already treats as a broken stream.
FAILED_FINISH = MappingProxyType(
    {
        "sensitive": (
            "1301",
            "The answer was blocked by the host's content moderation (finish_reason sensitive).",
        ),
        "model_context_window_exceeded": (
            "1261",
            "The conversation exceeds the model's context window"
            " (finish_reason model_context_window_exceeded).",
        ),
    }
)

# The business codes of [zai-codes], by what they mean for the account and the client.
_AUTH_CODES = frozenset({"1000", "1001", "1002", "1003", "1004"})
_RATE_CODES = frozenset({"1302", "1303", "1305"})
#: 1113: "Your account is in arrears" ([zai-codes]: HTTP 429 = balance exhausted); also what a
#: Coding Plan key gets on the pay-as-you-go endpoint and the reverse (openclaw commit 531b31ef).
_ARREARS = "1113"
#: Spent allowances that reset on their own: 1304 the daily limit ([zai-codes]); 1308 the Coding
#: Plan's 5 hours (dirge-code/dirge#818), 1310 its week or month, 1316 its 5 hours again
#: (LionSR/TeXRA#9865). The message names the reset time.
_LIMIT_CODES = frozenset({"1304", "1308", "1310", "1316"})
_CONTEXT_CODE = "1261"  # "Prompt exceeds max length" (hermes-agent PR #1877)
_MODEL_CODE = "1211"  # "Model does not exist" ([zai-codes])
#: 1210 bad parameters, 1213 missing field, 1214 invalid field, 1215 exclusive fields, 1301 unsafe
#: content: the client's to fix ([zai-codes]).
_BAD_CODES = frozenset({"1210", "1213", "1214", "1215", "1301"})

#: "… will reset at 2026-08-14T00:00:00Z" / "将在 2026-08-25 07:41:44 重置".
_RESET_AT = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:?\d{2})?")
#: Both hosts' wall clock when a reset time names no zone (Beijing and Singapore): an inference.
_HOST_ZONE = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class Thinking:
    """What goes into the body for thinking, and the ``x-iflow2api-thinking`` header's words."""

    fields: Mapping[str, Any]
    said: str | None


def family_of(model: str) -> Family:
    """How ``model`` thinks.

    >>> [family_of(model) for model in ("glm-5.3-flash", "GLM-5.2", "glm-4.7", "glm-4-32b-0414-128k")]
    ['always', 'effort', 'switch', 'none']
    """
    lower = model.lower()
    for pattern, family in FAMILIES:
        if fnmatch.fnmatchcase(lower, pattern):
            return family
    return "switch"


def thinking_for(
    model: str,
    intent: Intent,
    *,
    efforts: dict[Family, tuple[str, ...]],
    clear_thinking: bool | None,
) -> Thinking:
    """The thinking fields for ``model`` and the client's ``intent``.

    ``clear_thinking`` is sent with an enabled thinking when not None (preserved thinking is
    ``False``). Off on a model that always thinks is its least effort, not a refusal.

    >>> levels = {"always": ("low", "high", "max"), "effort": ("high", "max")}
    >>> thinking_for("glm-5.3", Intent("off"), efforts=levels, clear_thinking=None).said
    'enabled; reasoning_effort=low (always thinks)'
    >>> thinking_for("glm-4.7", Intent("on", "high"), efforts=levels, clear_thinking=False).fields
    {'thinking': {'type': 'enabled', 'clear_thinking': False}}
    """
    family = family_of(model)
    if family == "none":
        return Thinking({}, None if intent.mode == "default" else "none (the model does not think)")
    keep = {} if clear_thinking is None else {"clear_thinking": clear_thinking}
    if intent.mode == "default":
        if not keep:
            return Thinking({}, None)
        return Thinking({"thinking": {"type": "enabled", **keep}}, f"enabled; clear_thinking={_word(keep)}")
    if intent.mode == "off" and family != "always":
        return Thinking({"thinking": {"type": "disabled"}}, "disabled")
    fields: dict[str, Any] = {"thinking": {"type": "enabled", **keep}}
    said = ["enabled"]
    levels = efforts.get(family)
    if levels and intent.mode == "off":
        fields["reasoning_effort"] = levels[0]
        said.append(f"reasoning_effort={levels[0]} (always thinks)")
    elif levels and intent.effort is not None:
        fields["reasoning_effort"] = nearest_effort(intent.effort, levels)
        said.append(f"reasoning_effort={fields['reasoning_effort']}")
    if keep:
        said.append(f"clear_thinking={_word(keep)}")
    return Thinking(fields, "; ".join(said))


def _word(keep: Mapping[str, bool]) -> str:
    return "true" if keep["clear_thinking"] else "false"


def shape_request(request: dict[str, Any], info: ModelInfo | None, *, stream_options: bool) -> dict[str, Any]:
    """The client's request with what the host refuses taken out or turned into what it takes
    ([zai-api] ChatCompletionTextRequest): ``max_tokens`` (not ``max_completion_tokens``, at most
    the model's output), one ``stop``, ``tool_choice`` only ``auto``, no tool ``strict``, a
    ``response_format`` of ``text`` or ``json_object``, ``temperature`` in [0, 1], ``top_p`` in
    [0.01, 1]; no ``reasoning_effort`` (the thinking rules add their own) and, unless the
    ``stream_options`` option says otherwise, no ``stream_options``.

    >>> request = {"model": "glm-4.7", "stop": ["a", "b"], "max_completion_tokens": 9}
    >>> shape_request(request, None, stream_options=False)
    {'model': 'glm-4.7', 'stop': ['a'], 'max_tokens': 9}
    """
    body = renamed(request, "max_completion_tokens", "max_tokens")
    body = without(body, ("reasoning_effort",) if stream_options else ("reasoning_effort", "stream_options"))
    changes: dict[str, Any] = {}
    limit = info.max_output if info is not None else None
    if limit is not None and isinstance(body.get("max_tokens"), int) and body["max_tokens"] > limit:
        changes["max_tokens"] = limit
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 1:
        changes["stop"] = stop[:1]  # maxItems: 1
    if _number(body.get("temperature")) and body["temperature"] > 1:
        changes["temperature"] = 1
    if _number(body.get("top_p")) and body["top_p"] < 0.01:
        changes["top_p"] = 0.01
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        changes["response_format"] = {"type": "json_object"}
    if isinstance(body.get("tools"), list):
        changes["tools"] = [_tool(tool) for tool in body["tools"]]
    body = {**body, **changes} if changes else body
    choice = body.get("tool_choice")
    if choice == "none":
        # Only "auto" is taken; not calling tools is said by offering none.
        return without(body, ("tools", "tool_choice"))
    if choice is not None and choice != "auto":
        return {**body, "tool_choice": "auto"}  # a forced call cannot be asked for: the model decides
    return body


def _tool(tool: object) -> object:
    """A function tool without ``strict``, with the ``description`` and ``parameters`` the schema
    requires ([zai-api] FunctionToolSchema)."""
    if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
        return tool
    function = without(tool["function"], ("strict",))
    function = {"description": "", "parameters": {"type": "object", "properties": {}}, **function}
    return {**without(tool, ("strict",)), "function": function}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def error_of(
    status: int, error: Mapping[str, Any], *, retry_after: float | None, now: float
) -> GatewayError | None:
    """The gateway's error for a Zhipu ``{"code", "message"}`` ([zai-codes]; ``code`` is a string on
    the wire, an integer in the OpenAPI), or None for a code the table does not know.

    >>> type(error_of(429, {"code": "1113", "message": "in arrears"}, retry_after=None, now=0)).__name__
    'OutOfCredit'
    """
    code = str(error.get("code"))
    message = redact(str(error.get("message") or f"HTTP {status}"))
    text = f"Zhipu answered {status} ({code}): {message}"
    if code in _AUTH_CODES:
        return UpstreamAuthError(text + " Check the account's API key.")
    if code in _RATE_CODES:
        failure: GatewayError = UpstreamRateLimited(
            text, retry_after=10.0 if retry_after is None else retry_after
        )
        return failure if retry_after is None else failure.asked_to_wait(retry_after)
    if code == _ARREARS:
        return OutOfCredit(
            text + " (A GLM Coding Plan key works only on …/api/coding/paas/v4, a pay-as-you-go key only"
            " on …/api/paas/v4.)"
        )
    if code in _LIMIT_CODES:
        spent = OutOfCredit(text)
        reset = reset_in(message, now)
        # A reset already past (a skewed clock) says nothing of when credit is back: a person's call.
        return spent if reset is None or reset <= 0 else spent.asked_to_wait(reset)
    if code == _CONTEXT_CODE:
        return ContextTooLong(text)
    if code == _MODEL_CODE:
        return ModelNotFound(text)
    if code in _BAD_CODES:
        kind = "content_filter" if code == "1301" else f"zhipu_{code}"
        return InvalidRequest(text, code=kind)
    return None


def reset_in(message: str, now: float) -> float | None:
    """Seconds from ``now`` to the reset time a limit message names (UTC+8 when it names no zone).

    >>> reset_in("Your limit will reset at 2026-08-25 07:41:44", 1787611304.0)
    3600.0
    """
    found = _RESET_AT.search(message)
    if found is None:
        return None
    day, clock, zone = found.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if zone == 'Z' else zone or ''}")
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_HOST_ZONE)
    return max(0.0, moment.timestamp() - now)


def failed_finish(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Zhipu error a chunk's or an answer's failed ``finish_reason`` stands for, if any."""
    choices = payload.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("finish_reason") in FAILED_FINISH:
            code, message = FAILED_FINISH[choice["finish_reason"]]
            return {"error": {"code": code, "message": message}}
    return None


class FinishRewriter:
    """A stream as it comes, but for a chunk whose finish reason is a failure: that becomes the
    host's error object, which ends the stream as a failure (``Zhipu.business_error``)."""

    __slots__ = ()

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return [failed_finish(chunk) or chunk]

    def finish(self) -> list[dict[str, Any]]:
        return []


_128K = 131_072
_1M = 1_048_576


class Zhipu(Profile):
    name: ClassVar[str] = "zhipu"
    title: ClassVar[str] = "Zhipu BigModel / Z.ai (GLM)"
    #: Z.ai's pay-as-you-go endpoint ([zai-api] servers): the international host, reachable from
    #: anywhere; a BigModel account sets its own base URL (``https://open.bigmodel.cn/api/paas/v4``).
    base_url: ClassVar[str] = "https://api.z.ai/api/paas/v4"
    hosts: ClassVar[tuple[str, ...]] = ("api.z.ai", "open.bigmodel.cn", "bigmodel.cn")
    #: [zai-api] max_tokens ranges and model enum; [glm-5.3]; [bm-glm-new]; the GLM-5 family's
    #: 202,752 from hermes-agent PR #1877. GLM-4.5's context is not documented.
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType(
        {
            "glm-5.3": ModelInfo(_1M, _128K),
            "glm-5.3-flash": ModelInfo(_1M, _128K),
            "glm-5.2": ModelInfo(_1M, _128K),
            "glm-5.1": ModelInfo(202_752, _128K),
            "glm-5": ModelInfo(202_752, _128K),
            "glm-5-turbo": ModelInfo(202_752, _128K),
            "glm-4.7": ModelInfo(200_000, _128K),
            "glm-4.7-flash": ModelInfo(200_000, _128K),
            "glm-4.7-flashx": ModelInfo(200_000, _128K),
            "glm-4.6": ModelInfo(200_000, _128K),
            "glm-4.6v": ModelInfo(None, 32_768),
            "glm-4.5": ModelInfo(None, 98_304),
            "glm-4.5-air": ModelInfo(None, 98_304),
            "glm-4.5-x": ModelInfo(None, 98_304),
            "glm-4.5-airx": ModelInfo(None, 98_304),
            "glm-4.5-flash": ModelInfo(None, 98_304),
            "glm-4.5v": ModelInfo(None, 16_384),
            "glm-4-32b-0414-128k": ModelInfo(_128K, 16_384),
        }
    )
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # Which endpoint an account speaks to: "auto" reads it from the base URL's path
            # ("/coding/" is the Coding Plan's), else "standard" or "coding".
            "plan": "auto",
            # Preserved thinking (thinking.clear_thinking: false, [zai-thinking]): "auto" asks for it
            # on the Coding Plan, where it is the documented default, and leaves the pay-as-you-go
            # default (cleared) alone; "on" asks for it everywhere, "off" nowhere (clear_thinking: true).
            "preserved_thinking": "auto",
            # GLM-5.3's effort levels, least first, "/" between (a "," ends the option): low/high/max
            # per OpenRouter and AIHubMix, Together
            # adds medium (CONFLICT; checked 2026-12-03).
            "glm_5_3_efforts": "low/high/max",
            # GLM-5.2's: high and max ([bm-glm-new]).
            "glm_5_2_efforts": "high/max",
            # stream_options is not in the request schema ([zai-api]); usage comes on the last chunk
            # unasked (zai SDK ChatCompletionChunk.usage). True sends the client's anyway.
            "stream_options": False,
        }
    )

    def __init__(
        self, *, thinking_default: bool | None = None, options: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(thinking_default=thinking_default, options=options)
        if self.option_values["plan"] not in ("auto", "standard", "coding"):
            raise ValueError("provider_options: zhipu.plan is auto, standard or coding")
        if self.option_values["preserved_thinking"] not in ("auto", "on", "off"):
            raise ValueError("provider_options: zhipu.preserved_thinking is auto, on or off")
        self._efforts: dict[Family, tuple[str, ...]] = {
            "always": _levels(self.option_values["glm_5_3_efforts"], "glm_5_3_efforts"),
            "effort": _levels(self.option_values["glm_5_2_efforts"], "glm_5_2_efforts"),
        }

    def prepare(self, account: Account, request: dict[str, Any], intent: Intent | None = None) -> Outgoing:
        # The endpoint (pay-as-you-go or Coding Plan) is the account's, so the body is built here.
        prepared = self.build(request, intent, coding=self.coding(account.base_url))
        body = prepared.body
        return Outgoing(
            self.chat_url(account.base_url),
            self.headers(account.api_key),
            written.dumps(body),
            body.get("stream") is True,
            prepared.thinking,
        )

    def coding(self, base_url: str) -> bool:
        """Whether ``base_url`` is a Coding Plan endpoint (``…/api/coding/paas/v4``, zai-org/GLM-5#42)."""
        plan = self.option_values["plan"]
        return plan == "coding" if plan != "auto" else "/coding/" in base_url

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        return self.build(request, intent, coding=self.option_values["plan"] == "coding")

    def build(self, request: dict[str, Any], intent: Intent | None, *, coding: bool) -> Prepared:
        model = str(request.get("model", ""))
        body = shape_request(
            request, self.models.get(model.lower()), stream_options=bool(self.option_values["stream_options"])
        )
        preserved = self.option_values["preserved_thinking"]
        keep = {"on": False, "off": True}.get(str(preserved), False if coding else None)
        thinking = thinking_for(
            model, self.intent(request, intent), efforts=self._efforts, clear_thinking=keep
        )
        return Prepared({**body, **thinking.fields} if thinking.fields else body, thinking.said)

    def rewriter(self, request: dict[str, Any]) -> FinishRewriter:
        return FinishRewriter()

    def business_error(self, payload: object) -> GatewayError | None:
        if not isinstance(payload, dict):
            return None
        payload = failed_finish(payload) or payload
        error = payload.get("error")
        if isinstance(error, dict) and "choices" not in payload:
            found = error_of(200, error, retry_after=None, now=time.time())
            if found is not None:
                return found
        return openai_wire.business_error(payload)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        error = _error_object(body)
        found = error_of(status, error, retry_after=retry_after, now=time.time()) if error else None
        return found or openai_wire.http_error(status, body, retry_after=retry_after)


def _levels(value: object, option: str) -> tuple[str, ...]:
    levels = tuple(level for level in str(value).replace("/", " ").split() if level)
    if not levels:
        raise ValueError(f"provider_options: zhipu.{option} needs at least one level")
    return levels


def _error_object(body: bytes) -> dict[str, Any] | None:
    """``error`` of ``{"error": {"code", "message"}}``, or the top level of the OpenAPI's
    ``{"code", "message"}`` (CONFLICT: both shapes are documented or seen)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict) and "code" in error:
        return error
    return payload if "code" in payload and "message" in payload else None


PROFILE = Zhipu
