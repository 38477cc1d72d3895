"""The openrouter profile: the reasoning object, reasoning out and back, pinning, errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from iflow2api import errors
from iflow2api.dialects.intent import Intent
from iflow2api.providers import for_host
from iflow2api.providers.openrouter import OpenRouter, OpenRouterRewriter
from tests.fake_iflow.hosts.openrouter import error_body, error_chunk

CHAT: dict[str, Any] = {
    "model": "deepseek/deepseek-v4-flash",
    "messages": [{"role": "user", "content": "hi"}],
}


def profile(**options: object) -> OpenRouter:
    return OpenRouter(options=options)


def test_the_host_names_the_profile() -> None:
    assert for_host("https://openrouter.ai/api/v1") == "openrouter"


@pytest.mark.parametrize(
    ("model", "intent", "reasoning", "header"),
    [
        (CHAT["model"], Intent("on", "high"), {"effort": "high"}, "effort=high"),
        (CHAT["model"], Intent("on", "medium", 8000), {"max_tokens": 8000}, "max_tokens=8000"),
        (CHAT["model"], Intent("adaptive"), {"enabled": True}, "enabled"),
        (CHAT["model"], Intent("off"), {"enabled": False}, "disabled"),
        ("z-ai/glm-5.3", Intent("off"), None, "mandatory (not turned off)"),
        (CHAT["model"], Intent(), None, None),
    ],
)
def test_the_reasoning_object_from_the_intent(
    model: str, intent: Intent, reasoning: object, header: str | None
) -> None:
    prepared = profile().build_body({**CHAT, "model": model, "reasoning_effort": "low"}, intent)
    assert prepared.body.get("reasoning") == reasoning
    assert prepared.thinking == header
    assert "reasoning_effort" not in prepared.body


def test_reasoning_effort_alone_is_the_intent() -> None:
    prepared = profile().build_body({**CHAT, "reasoning_effort": "none"}, None)
    assert prepared.body["reasoning"] == {"enabled": False}


def test_a_client_reasoning_object_passes_without_intent() -> None:
    prepared = profile().build_body({**CHAT, "reasoning": {"effort": "low", "exclude": True}}, None)
    assert prepared.body["reasoning"] == {"effort": "low", "exclude": True}


def test_exclude_and_provider_order_options() -> None:
    prepared = profile(
        exclude_reasoning=True, provider_order="DeepSeek, SiliconFlow", allow_fallbacks=False
    ).build_body({**CHAT, "max_tokens": 100, "prompt_cache_key": "k", "session_id": "s"}, Intent("on", "low"))
    body = prepared.body
    assert body["reasoning"] == {"effort": "low", "exclude": True}
    assert body["provider"] == {"order": ["DeepSeek", "SiliconFlow"], "allow_fallbacks": False}
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert (body["prompt_cache_key"], body["session_id"]) == ("k", "s")
    client_order = profile(provider_order="X").build_body({**CHAT, "provider": {"order": ["Y"]}}, None)
    assert client_order.body["provider"] == {"order": ["Y"]}


def test_reasoning_goes_back_as_details_or_text() -> None:
    details = [{"type": "reasoning.encrypted", "data": "opaque"}]
    turns = [
        {"role": "assistant", "content": "", "reasoning_content": "why", "tool_calls": [{"id": "a"}]},
        {"role": "assistant", "content": "x", "reasoning_content": "why", "reasoning_details": details},
    ]
    sent = profile().build_body({**CHAT, "messages": [*CHAT["messages"], *turns]}, None).body["messages"]
    assert sent[1] == {"role": "assistant", "content": "", "reasoning": "why", "tool_calls": [{"id": "a"}]}
    assert sent[2] == {"role": "assistant", "content": "x", "reasoning_details": details}
    assert turns[0]["reasoning_content"] == "why"  # never edited in place


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "g", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_stream_reasoning_becomes_reasoning_content() -> None:
    details = [{"type": "reasoning.text", "text": "why"}]
    (out,) = OpenRouterRewriter().feed(chunk({"reasoning": "why", "reasoning_details": details}))
    assert out["choices"][0]["delta"] == {"reasoning_content": "why", "reasoning_details": details}
    (summary,) = OpenRouterRewriter().feed(
        chunk({"reasoning_details": [{"type": "reasoning.summary", "summary": "s"}]})
    )
    assert summary["choices"][0]["delta"]["reasoning_content"] == "s"
    plain = chunk({"content": "hi"})
    assert OpenRouterRewriter().feed(plain) == [plain]


def test_an_error_chunk_becomes_an_error() -> None:
    (out,) = OpenRouterRewriter().feed(
        error_chunk("m", 502, "Provider returned error", error_type="provider_unavailable")
    )
    assert "choices" not in out
    assert isinstance(profile().business_error(out), errors.UpstreamError)
    (bare,) = OpenRouterRewriter().feed(chunk({}, "error"))
    assert isinstance(profile().business_error(bare), errors.UpstreamError)


def test_whole_answers_are_normalized() -> None:
    completion: dict[str, Any] = {
        "choices": [{"message": {"content": "ok", "reasoning": "why", "reasoning_details": []}}]
    }
    assert profile().normalize_completion(completion) is True
    assert completion["choices"][0]["message"] == {
        "content": "ok",
        "reasoning_content": "why",
        "reasoning_details": [],
    }
    plain: dict[str, Any] = {"choices": [{"message": {"content": "ok"}}]}
    assert profile().normalize_completion(plain) is False


def test_a_failed_choice_in_a_200_is_an_error() -> None:
    payload = {"choices": [{"message": {"content": ""}, "error": {"code": 429, "message": "slow"}}]}
    assert isinstance(profile().business_error(payload), errors.UpstreamRateLimited)
    assert profile().business_error({"choices": [{"message": {"content": "ok"}}]}) is None


RAW = '{"error":{"message":"The `reasoning_content` in the thinking mode must be passed back to the API."}}'


@pytest.mark.parametrize(
    ("status", "body", "error", "client_status"),
    [
        (402, error_body(402, "Insufficient credits"), errors.OutOfCredit, 429),
        (401, error_body(401, "No auth credentials found"), errors.UpstreamAuthError, 401),
        (
            429,
            error_body(429, "Rate limited", error_type="rate_limit_exceeded"),
            errors.UpstreamRateLimited,
            429,
        ),
        (400, error_body(400, "too long", error_type="context_length_exceeded"), errors.ContextTooLong, 400),
        (403, error_body(403, "flagged", reasons=["x"]), errors.InvalidRequest, 403),
        (404, error_body(404, "No endpoints found"), errors.ModelNotFound, 404),
        (502, error_body(502, "Provider returned error"), errors.UpstreamError, 502),
        (
            400,
            error_body(400, "Provider returned error", raw=RAW, provider_name="DeepSeek"),
            errors.InvalidRequest,
            400,
        ),
    ],
)
def test_http_errors(
    status: int, body: dict[str, Any], error: type[errors.GatewayError], client_status: int
) -> None:
    found = profile().http_error(status, orjson.dumps(body), None, None)
    assert type(found) is error
    assert found.status == client_status


def test_the_routed_host_words_are_unwrapped() -> None:
    body = error_body(400, "Provider returned error", raw=RAW, provider_name="DeepSeek")
    found = profile().http_error(400, orjson.dumps(body), None, None)
    assert "DeepSeek: The `reasoning_content` in the thinking mode must be passed back" in found.message


def test_retry_after_is_the_upstream_word() -> None:
    found = profile().http_error(429, orjson.dumps(error_body(429, "slow")), None, 7.0)
    assert found.upstream_wait == 7.0
    unknown = profile().http_error(
        400,
        orjson.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "x is not a valid model ID",
                    "availability": {"code": "model_not_found"},
                }
            }
        ),
        None,
        None,
    )
    assert isinstance(unknown, errors.ModelNotFound)
