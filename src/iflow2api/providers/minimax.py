"""The ``minimax`` profile: MiniMax's OpenAI-compatible API (``api.minimax.io``, ``api.minimaxi.com``).

Sources, checked 2026-12-03 (the facts with their citations are in the
team's ``facts/zhipu_minimax.md`` §B):
platform.minimax.io/docs/api-reference/text-openai-api ("TOA"), .../text-chat ("TC"),
.../errorcode ("EC"); reports quoted where the docs are silent.

Thinking. MiniMax-M3 takes ``thinking: {"type": "adaptive" | "disabled"}`` and refuses ``"enabled"``
with 2013 (CherryHQ/cherry-studio#16624), so any "on" is sent as ``adaptive``; the M2 family always
thinks and ignores the switch (agentscope; TradingAgents PR #1229), so nothing is sent and "off" is
clamped (the ``x-iflow2api-thinking`` header says so). ``reasoning_effort`` is not documented on
``/v1/chat/completions`` (hermes-agent PR #46648), so it is dropped unless ``send_reasoning_effort``.

Reasoning out. With ``reasoning_split: true`` (TOA; the ``reasoning_split`` option, on by default as
the facts recommend) reasoning comes in ``reasoning_details`` (M3 also fills ``reasoning_content``);
without it, as ``<think>…</think>`` at the start of ``content`` (TOA), the tag split anywhere across
stream chunks (MiniMax-AI/MiniMax-M2#105). Either way the gateway relays ``reasoning_content``.

Reasoning back. MiniMax wants the earlier reasoning exactly as it came (TOA "Important Note"):
``reasoning_details`` in split mode, else the ``<think>`` text in front of the content. The gateway
keeps the reasoning's text verbatim and rebuilds the one ``reasoning.text`` item (or the tag) around it.

Errors. HTTP errors carry the code only as a ``(NNNN)`` suffix of the message; answers inside an
HTTP 200 carry ``base_resp.status_code`` ≠ 0 (EC; cherry-studio#7555). No Retry-After is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from iflow2api import errors
from iflow2api.dialects.intent import Intent
from iflow2api.errors import GatewayError
from iflow2api.providers import openai_wire
from iflow2api.providers.base import ChunkRewriter, ModelInfo, Prepared, Profile
from iflow2api.providers.rules import renamed, without
from iflow2api.providers.think_tags import CLOSE, OPEN, ThinkSplitter, split_think
from iflow2api.redact import redact

#: What MiniMax writes between ``</think>`` and the answer; put back when the tag is rebuilt.
SEPARATOR = "\n\n"

# One ``reasoning.text`` item, as M3 sends it with reasoning_split (M3-EMPIRICAL.md, 2026-12-03).
_DETAIL = {"type": "reasoning.text", "id": "reasoning-text-1", "format": "MiniMax-response-v1", "index": 0}

# A code at the end of an error message: "... context window exceeds limit (2013)" (errors-and-responses.md).
_CODE = re.compile(r"\((\d{4})\)\s*$")
_RATE_LIMIT = frozenset({1002})
_AUTH = frozenset({1004})
# 1008 insufficient balance (EC); 1028/1030 quota spent (MiniMax-AI/cli mapApiError).
_CREDIT = frozenset({1008, 1028, 1030})
# 2013 invalid params (EC, the catch-all); 1039 sensitive content (cli mapApiError).
_INVALID = frozenset({2013, 1039})
# 2061: the model is not on this key's plan (cli mapApiError).
_NOT_ON_PLAN = frozenset({2061})
# What MiniMax adds to every answer (TC): a success code and the sensitivity flags.
_EXTRAS = (
    "base_resp",
    "input_sensitive",
    "output_sensitive",
    "input_sensitive_type",
    "output_sensitive_type",
)


def always_thinks(model: str) -> bool:
    """The M2 family thinks whatever it is told (agentscope; TradingAgents PR #1229).

    >>> always_thinks("MiniMax-M2.7-highspeed"), always_thinks("MiniMax-M3")
    (True, False)
    """
    return model.lower().startswith("minimax-m2")


def details_text(details: object) -> str:
    """The text of ``reasoning.text`` items in a ``reasoning_details`` array."""
    if not isinstance(details, list):
        return ""
    return "".join(
        item["text"] for item in details if isinstance(item, dict) and isinstance(item.get("text"), str)
    )


# --- the stream ---------------------------------------------------------------------------------


class MinimaxRewriter:
    """MiniMax's chunks in the gateway's shape: reasoning from ``reasoning_details`` or the
    ``<think>`` block as ``delta.reasoning_content``, the answer clean, errors in ``base_resp``
    without choices (so they are judged as errors), usage in OpenAI's shape.

    ``cumulative``: each ``reasoning_details`` text repeats all before it (the official example)
    rather than adding to it (live tests, MiniMax-M2#95): the ``reasoning_details_stream`` option.
    """

    __slots__ = ("_cumulative", "_envelope", "_field_seen", "_profile", "_shown", "_splitters")

    def __init__(self, profile: Minimax, *, cumulative: bool) -> None:
        self._profile = profile
        self._cumulative = cumulative
        self._splitters: dict[int, ThinkSplitter] = {}
        self._shown: dict[int, int] = {}  # reasoning_details characters seen, per choice
        self._field_seen: set[int] = set()  # choices whose reasoning came as reasoning_content
        self._envelope: dict[str, Any] = {"object": "chat.completion.chunk"}

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if _failed(chunk):
            return [{key: value for key, value in chunk.items() if key != "choices"}]
        self._envelope = {key: chunk[key] for key in ("id", "object", "created", "model") if key in chunk}
        out = {key: value for key, value in chunk.items() if key not in _EXTRAS}
        if isinstance(chunk.get("usage"), dict):
            out["usage"] = self._profile.normalize_usage(chunk["usage"])
        choices = chunk.get("choices")
        if isinstance(choices, list):
            out["choices"] = [self._choice(choice) for choice in choices]
        return [out]

    def finish(self) -> list[dict[str, Any]]:
        """A stream that ended inside the block (or holding what might start a tag)."""
        choices = []
        for index in sorted(self._splitters):
            delta = self._delta({}, index, *self._splitters.pop(index).finish())
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        return [{**self._envelope, "choices": choices}] if choices else []

    def _choice(self, choice: object) -> object:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
            return choice
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        delta: dict[str, Any] = choice["delta"]
        splitter = self._splitters.setdefault(index, ThinkSplitter())
        reasoning, answer = ("", "")
        if isinstance(delta.get("content"), str):
            reasoning, answer = splitter.feed(delta["content"])
        if choice.get("finish_reason") is not None:
            more_reasoning, more_answer = splitter.finish()
            reasoning, answer = reasoning + more_reasoning, answer + more_answer
        rest = without(delta, ["content", "reasoning_content", "reasoning_details"])
        return {**choice, "delta": self._delta(rest, index, reasoning, answer, delta)}

    def _delta(
        self,
        rest: dict[str, Any],
        index: int,
        tag_reasoning: str,
        answer: str,
        delta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        reasoning = ""
        if delta is not None and isinstance(delta.get("reasoning_content"), str):
            reasoning = delta["reasoning_content"]
            self._field_seen.add(index)
        elif delta is not None and index not in self._field_seen:
            reasoning = self._new_details_text(index, delta.get("reasoning_details"))
        if index not in self._field_seen:
            # M3 without split may send its reasoning twice: as the field and as the tag (vellum PR #34556).
            reasoning += tag_reasoning
        out = dict(rest)
        if reasoning:
            out["reasoning_content"] = reasoning
        if answer:
            out["content"] = answer
        return out

    def _new_details_text(self, index: int, details: object) -> str:
        text = details_text(details)
        if not self._cumulative:
            return text
        shown = self._shown.get(index, 0)
        self._shown[index] = max(shown, len(text))
        return text[shown:]


def _failed(payload: object) -> bool:
    """Whether an answer or chunk is an error in a 200: ``base_resp.status_code`` other than 0."""
    base = payload.get("base_resp") if isinstance(payload, dict) else None
    code = base.get("status_code") if isinstance(base, dict) else None
    return isinstance(code, int) and code != 0


# --- errors -------------------------------------------------------------------------------------


def error_of(code: int | None, message: str, status: int | None, kind: str = "") -> GatewayError | None:
    """The gateway's error for MiniMax's code (or error ``type``), None when neither says.

    >>> type(error_of(1008, "insufficient balance", 500)).__name__
    'OutOfCredit'
    """
    if code in _CREDIT or kind == "insufficient_balance_error":
        return errors.OutOfCredit(message)
    if code in _RATE_LIMIT or kind == "rate_limit_error":
        # MiniMax sends no Retry-After (rate-limits.md, 2026-04-29): the pool's own cooldown applies.
        return errors.UpstreamRateLimited(message)
    if code in _AUTH or kind == "authorized_error":
        return errors.UpstreamAuthError(message + " Check the account's api_key.")
    if code in _NOT_ON_PLAN or (code == 2013 and "unknown model" in message):
        return errors.ModelNotFound(message)
    if code == 2013 and "context window exceeds" in message:
        return errors.ContextTooLong(message)
    if code in _INVALID:
        return errors.InvalidRequest(
            message, code="invalid_params", status=status if status and status < 500 else 400
        )
    if code is not None:
        return errors.UpstreamError(message)  # 1000 unknown, 1001 timeout, 1024 internal...
    return None


def _code(message: str) -> int | None:
    found = _CODE.search(message)
    return int(found.group(1)) if found else None


# --- the profile --------------------------------------------------------------------------------


class Minimax(Profile):
    """MiniMax's ``/v1/chat/completions``."""

    name: ClassVar[str] = "minimax"
    title: ClassVar[str] = "MiniMax"
    base_url: ClassVar[str] = "https://api.minimax.io/v1"  # TOA; China: https://api.minimaxi.com/v1
    # TOA; the .chat hosts are the legacy names (facts §B1).
    hosts: ClassVar[tuple[str, ...]] = (
        "api.minimax.io",
        "api.minimaxi.com",
        "api.minimax.chat",
        "api.minimaxi.chat",
    )
    # TOA context windows; M3's longest answer is what it enforces (M3-EMPIRICAL.md), M2's is undocumented.
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType(
        {
            "MiniMax-M3": ModelInfo(1_000_000, 524_288),
            **{
                model: ModelInfo(204_800)
                for model in (
                    "MiniMax-M2.7",
                    "MiniMax-M2.7-highspeed",
                    "MiniMax-M2.5",
                    "MiniMax-M2.5-highspeed",
                    "MiniMax-M2.1",
                    "MiniMax-M2.1-highspeed",
                    "MiniMax-M2",
                )
            },
        }
    )
    options: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            # reasoning_details rather than <think> in content: recommended (facts §B "Settings").
            "reasoning_split": True,
            # CONFLICT: the official streaming example is cumulative, live tests incremental.
            "reasoning_details_stream": "incremental",
            # UNDOCUMENTED on /v1/chat/completions; M3 takes it empirically (M3-EMPIRICAL.md).
            "send_reasoning_effort": False,
        }
    )

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        split = bool(self.option_values["reasoning_split"])
        body = openai_wire.build_body(request)
        thinking_asked = _client_thinking(body.get("thinking"))
        body = without(body, ["thinking", "reasoning_effort"])
        body = renamed(body, "max_tokens", "max_completion_tokens")  # max_tokens is deprecated (agentscope)
        body = _clamped(body, self.models.get(body["model"]))
        tools = body.get("tools")
        if isinstance(tools, list):
            body["tools"] = [_without_strict(tool) for tool in tools]  # not in the schema (agentscope)
        if split:
            body["reasoning_split"] = True
        body["messages"] = _with_reasoning_back(body["messages"], split)
        wanted = self.intent(request, intent)
        if wanted.mode == "default" and thinking_asked is not None:
            wanted = Intent(thinking_asked)
        thinking = self._thinking(body, wanted, request.get("reasoning_effort"))
        return Prepared(body, thinking=thinking)

    def _thinking(self, body: dict[str, Any], intent: Intent, effort: object) -> str | None:
        if always_thinks(body["model"]):
            return None if intent.mode == "default" else "always on (the M2 family cannot turn thinking off)"
        if intent.mode == "default":
            return None
        if intent.mode == "off":
            body["thinking"] = {"type": "disabled"}
            return "disabled"
        body["thinking"] = {"type": "adaptive"}  # "enabled" is refused with 2013
        level = intent.effort or (effort if isinstance(effort, str) else None)
        if self.option_values["send_reasoning_effort"] and level:
            body["reasoning_effort"] = level
            return f"adaptive; reasoning_effort={level}"
        return "adaptive"

    def rewriter(self, request: dict[str, Any]) -> ChunkRewriter | None:
        cumulative = self.option_values["reasoning_details_stream"] == "cumulative"
        return MinimaxRewriter(self, cumulative=cumulative)

    def normalize_completion(self, completion: dict[str, Any]) -> bool:
        changed = False
        for name in _EXTRAS:
            changed = completion.pop(name, None) is not None or changed
        if isinstance(completion.get("usage"), dict):
            usage = self.normalize_usage(completion["usage"])
            changed = changed or usage != completion["usage"]
            completion["usage"] = usage
        for choice in completion.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                changed = _normalize_message(message) or changed
        return changed

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        # total_characters is always 0 (quirks.md); cache_read_input_tokens is the Anthropic
        # spelling MiniMax also uses on /v1 with cache_control (cache-read-semantics.md).
        out = without(usage, ["total_characters", "cache_read_input_tokens"])
        cached = usage.get("cache_read_input_tokens")
        details = usage.get("prompt_tokens_details")
        if isinstance(cached, int) and not (isinstance(details, dict) and "cached_tokens" in details):
            out = {**out, "prompt_tokens_details": {**(details or {}), "cached_tokens": cached}}
        return out

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        error = openai_wire._upstream_error(body)  # its error object, or {}
        message = redact(str(error.get("message") or ""))
        kind = error.get("type") if isinstance(error.get("type"), str) else ""
        found = error_of(_code(message), f"MiniMax answered {status}: {message}", status, str(kind))
        if found is None and status == 402:
            found = errors.OutOfCredit(f"MiniMax answered 402: {message}")
        if found is None:
            return openai_wire.http_error(status, body, retry_after=retry_after)
        if retry_after is not None and status in (429, 503):
            found.asked_to_wait(retry_after)
        return found

    def business_error(self, payload: object) -> GatewayError | None:
        if _failed(payload):
            assert isinstance(payload, dict)
            base = payload["base_resp"]
            message = redact(str(base.get("status_msg") or "error"))
            code = base["status_code"]
            return error_of(code, f"MiniMax reported error {code} in its answer: {message}", None)
        found = None
        error = payload.get("error") if isinstance(payload, dict) and "choices" not in payload else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = redact(error["message"])
            found = error_of(_code(message), f"MiniMax reported an error in its answer: {message}", None)
        return found or openai_wire.business_error(payload)


def _client_thinking(thinking: object) -> Literal["off", "on"] | None:
    """A chat client's own MiniMax ``thinking`` switch, as an intent's mode."""
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        return None
    return "off" if thinking["type"] == "disabled" else "on"


def _clamped(body: dict[str, Any], model: ModelInfo | None) -> dict[str, Any]:
    """Values MiniMax refuses, brought into its ranges: temperature and top_p in (0, 1] (TC), the
    answer's length within the model's longest (M3: > 524,288 is 2013, M3-EMPIRICAL.md)."""
    out = body
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and not 0 < value <= 1:
            out = {**out, name: min(max(value, 0.01), 1.0)}
    limit = model.max_output if model is not None else None
    length = body.get("max_completion_tokens")
    if limit is not None and isinstance(length, int) and length > limit:
        out = {**out, "max_completion_tokens": limit}
    return out if out is not body else dict(body)


def _without_strict(tool: object) -> object:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or "strict" not in function:
        return tool
    assert isinstance(tool, dict)
    return {**tool, "function": without(function, ["strict"])}


def _with_reasoning_back(messages: list[Any], split: bool) -> list[Any]:
    """The history with each assistant turn's reasoning where MiniMax reads it: a
    ``reasoning_details`` item (split), else the ``<think>`` block before the content."""
    out: list[Any] | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        reasoning = message.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            continue
        turn = without(message, ["reasoning_content"])
        if split:
            if not isinstance(turn.get("reasoning_details"), list):  # the client's own, verbatim
                turn["reasoning_details"] = [{**_DETAIL, "text": reasoning}]
        else:
            turn["content"] = _with_think(reasoning, turn.get("content"))
        if out is None:
            out = list(messages)
        out[index] = turn
    return messages if out is None else out


def _with_think(reasoning: str, content: object) -> object:
    block = f"{OPEN}{reasoning}{CLOSE}{SEPARATOR}"
    if isinstance(content, list):
        return [{"type": "text", "text": block}, *content]
    if isinstance(content, str) and content.lstrip().startswith(OPEN):
        return content  # the client kept the block itself
    return block + (content if isinstance(content, str) else "")


def _normalize_message(message: dict[str, Any]) -> bool:
    """A whole answer's message with its reasoning in ``reasoning_content`` and clean content."""
    reasoning = message.get("reasoning_content")
    details = message.pop("reasoning_details", None)
    changed = details is not None
    if not isinstance(reasoning, str) and details is not None:
        reasoning = details_text(details)
    content = message.get("content")
    if isinstance(content, str):
        tag_reasoning, answer = split_think(content)
        if tag_reasoning is not None:
            message["content"] = answer
            changed = True
            if not isinstance(reasoning, str) or not reasoning:
                reasoning = tag_reasoning
    if isinstance(reasoning, str) and reasoning and message.get("reasoning_content") != reasoning:
        message["reasoning_content"] = reasoning
        changed = True
    for name in ("name", "audio_content"):
        changed = message.pop(name, None) is not None or changed
    return changed


PROFILE = Minimax
