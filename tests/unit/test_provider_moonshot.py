"""The ``moonshot`` profile (Kimi) as pure functions: bodies per model and intent, errors, usage.

Each body it builds is also judged by the fake Kimi (``tests/fake_iflow/hosts/moonshot.py``), so a
rule the profile forgets shows as the host's own 400.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from iflow2api import errors, providers
from iflow2api.dialects.intent import Intent
from iflow2api.providers.base import EventRewriter
from iflow2api.providers.moonshot import Moonshot
from tests.fake_iflow import DEFAULT_KEY
from tests.fake_iflow.hosts import moonshot as fake_kimi

MODELS = ["kimi-k3", "kimi-k3.1-pro", "kimi-k2.7-code", "kimi-k2.6", "kimi-k2.5", "moonshot-v1-8k"]
CALL = {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
LOOP: list[dict[str, Any]] = [
    {"role": "user", "content": "list"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "a b"},
]
TOOL = {"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}, "strict": True}}


def judged(body: dict[str, Any]) -> str | None:
    """The fake Kimi's reason to refuse ``body``, or None."""
    headers = {"authorization": f"Bearer {DEFAULT_KEY}"}
    rejection = fake_kimi.HOST().judge(headers, body, api_keys=[DEFAULT_KEY], models=MODELS)
    return None if rejection is None else rejection.reason


def build(
    request: dict[str, Any], intent: Intent | None = None, **options: object
) -> tuple[dict[str, Any], str | None]:
    prepared = Moonshot(options=options).build_body(request, intent)
    assert judged(prepared.body) is None, judged(prepared.body)
    return prepared.body, prepared.thinking


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_found_by_its_hosts() -> None:
    for url in ("https://api.moonshot.ai/v1", "https://api.moonshot.cn/v1", "https://api.kimi.com/coding/v1"):
        assert providers.for_host(url) == "moonshot"
    assert providers.for_host(Moonshot.base_url) == "moonshot"
    assert Moonshot.models["kimi-k3"].context_window == 1_048_576
    assert Moonshot.models["kimi-k2.6"].context_window == 262_144


@pytest.mark.parametrize(
    ("model", "intent", "sent", "header"),
    [
        # K3 always thinks: efforts clamped to low/high/max, off to low, nothing sent by default
        # (and then no header: it says what was sent).
        ("kimi-k3", None, {}, None),
        ("kimi-k3", Intent("on", "medium"), {"reasoning_effort": "high"}, "reasoning_effort=high"),
        ("kimi-k3", Intent("on", "xhigh"), {"reasoning_effort": "max"}, "reasoning_effort=max"),
        ("kimi-k3", Intent("on", "minimal"), {"reasoning_effort": "low"}, "reasoning_effort=low"),
        ("kimi-k3.1-pro", Intent("off"), {"reasoning_effort": "low"}, "reasoning_effort=low"),
        ("kimi-k3", Intent("adaptive"), {}, None),
        # K2.7-code refuses disabled: off is clamped to what it does anyway, and nothing is sent.
        ("kimi-k2.7-code", Intent("off"), {}, "enabled"),
        ("kimi-k2.7-code", Intent("on", "high"), {}, "enabled"),
        ("kimi-k2.7-code", None, {}, None),
        # K2.6 and K2.5 switch; no effort levels.
        ("kimi-k2.6", Intent("off"), {"thinking": {"type": "disabled"}}, "disabled"),
        ("kimi-k2.6", Intent("on", "low"), {"thinking": {"type": "enabled"}}, "enabled"),
        ("kimi-k2.5", Intent("adaptive"), {"thinking": {"type": "enabled"}}, "enabled"),
        ("kimi-k2.5", None, {}, None),
        # The legacy models do not think: nothing to switch.
        ("moonshot-v1-8k", Intent("on", "high"), {}, None),
    ],
)
def test_thinking_per_model(
    model: str, intent: Intent | None, sent: dict[str, Any], header: str | None
) -> None:
    body, thinking = build(chat(model), intent)
    assert {k: body[k] for k in ("thinking", "reasoning_effort") if k in body} == sent
    assert thinking == header


def test_reasoning_effort_of_a_chat_client_is_the_intent() -> None:
    body, thinking = build(chat("kimi-k2.6", reasoning_effort="none"))
    assert body["thinking"] == {"type": "disabled"} and "reasoning_effort" not in body
    body, thinking = build(chat("kimi-k3", reasoning_effort="medium"))
    assert body["reasoning_effort"] == "high" and thinking == "reasoning_effort=high"


def test_a_chat_clients_own_thinking_switch_counts_and_is_not_sent_twice() -> None:
    body, thinking = build(chat("kimi-k2.6", thinking={"type": "disabled"}))
    assert body["thinking"] == {"type": "disabled"} and thinking == "disabled"
    body, _ = build(chat("kimi-k3", thinking={"type": "enabled"}))
    assert "thinking" not in body


def test_a_chat_clients_own_switch_wins_over_thinking_default() -> None:
    prepared = Moonshot(thinking_default=True).build_body(
        chat("kimi-k2.6", thinking={"type": "disabled"}), None
    )
    assert prepared.body["thinking"] == {"type": "disabled"}


def test_thinking_default_setting_applies_without_intent() -> None:
    prepared = Moonshot(thinking_default=False).build_body(chat("kimi-k2.6"), None)
    assert prepared.body["thinking"] == {"type": "disabled"}
    prepared = Moonshot(thinking_default=False).build_body(chat("kimi-k2.7-code"), None)
    assert "thinking" not in prepared.body and prepared.thinking == "enabled"


def test_preserved_thinking_option_keeps_all_on_k26_only() -> None:
    body, thinking = build(chat("kimi-k2.6"), preserved_thinking=True)
    assert body["thinking"] == {"type": "enabled", "keep": "all"} and thinking == "enabled; keep=all"
    body, _ = build(chat("kimi-k2.5", reasoning_effort="high"), preserved_thinking=True)
    assert body["thinking"] == {"type": "enabled"}


@pytest.mark.parametrize("model", ["kimi-k3", "kimi-k2.7-code", "kimi-k2.6"])
def test_tool_loop_while_thinking_gets_reasoning_back_or_the_filler(model: str) -> None:
    request = chat(model, messages=LOOP)
    assert judged(request) is not None  # the host refuses the client's history as it came
    body, _ = build(request)
    assert body["messages"][1]["reasoning_content"] == ""
    assert "reasoning_content" not in LOOP[1]  # the client's dict is left alone
    known = [LOOP[0], {**LOOP[1], "reasoning_content": "I should list."}, LOOP[2]]
    body, _ = build(chat(model, messages=known))
    assert body["messages"][1]["reasoning_content"] == "I should list."


def test_filler_option_and_no_filler_when_thinking_is_off() -> None:
    body, _ = build(chat("kimi-k2.6", messages=LOOP), reasoning_filler="tool call")
    assert body["messages"][1]["reasoning_content"] == "tool call"
    body, _ = build(chat("kimi-k2.6", messages=LOOP), Intent("off"))
    assert "reasoning_content" not in body["messages"][1]
    assert judged(chat("kimi-k2.6", messages=LOOP, thinking={"type": "disabled"})) is None


def test_fixed_sampling_removed_and_max_tokens_renamed() -> None:
    sampling = {"temperature": 0.2, "top_p": 0.5, "n": 1, "presence_penalty": 0.1, "frequency_penalty": 0.3}
    request = chat("kimi-k2.6", max_tokens=100, **sampling)
    assert judged(request) == "invalid temperature: only 1 is allowed for this model"
    body, _ = build(request)
    assert not set(sampling) & set(body)
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    body, _ = build(chat("moonshot-v1-8k", temperature=0.2, max_tokens=10))
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 10


def test_tool_strict_dropped_unless_told_otherwise() -> None:
    body, _ = build(chat("kimi-k2.6", tools=[TOOL]))
    assert body["tools"][0]["function"] == {"name": "ls", "parameters": {"type": "object"}}
    assert TOOL["function"]["strict"] is True  # type: ignore[index]
    prepared = Moonshot(options={"drop_tool_strict": "false"}).build_body(
        chat("kimi-k2.6", tools=[TOOL]), None
    )
    assert prepared.body["tools"][0]["function"]["strict"] is True


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "ls"}}])
def test_forced_tool_choice_while_thinking(choice: object) -> None:
    tools = [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}]
    for model in ("kimi-k2.7-code", "kimi-k2.6"):
        assert judged(chat(model, tools=tools, tool_choice=choice)) is not None
        body, _ = build(chat(model, tools=tools, tool_choice=choice))
        assert body["tool_choice"] == "auto"
    body, thinking = build(chat("kimi-k2.6", tools=tools, tool_choice=choice), forced_tool_choice="think-off")
    assert body["tool_choice"] == choice and thinking == "disabled"
    body, _ = build(chat("kimi-k3", tools=tools, tool_choice=choice))  # K3 takes a forced choice
    assert body["tool_choice"] == choice
    body, _ = build(chat("kimi-k2.6", tools=tools, tool_choice=choice), Intent("off"))
    assert body["tool_choice"] == choice


def test_unknown_or_wrong_options_are_refused() -> None:
    with pytest.raises(ValueError, match="forced_tool_choice"):
        Moonshot(options={"forced_tool_choice": "never"})
    with pytest.raises(ValueError, match="no option"):
        Moonshot(options={"keep": "all"})


def test_stream_asks_for_usage() -> None:
    body, _ = build(chat("kimi-k2.6", stream=True))
    assert body["stream_options"] == {"include_usage": True}


def kimi_error(status: int, kind: str, message: str, retry_after: float | None = None) -> errors.GatewayError:
    body = orjson.dumps(fake_kimi.error_body(kind, message))
    return Moonshot().http_error(status, body, None, retry_after)


def test_quota_spent_is_out_of_credit_whatever_the_status() -> None:
    for status in (429, 403):
        error = kimi_error(status, "exceeded_current_quota_error", "suspended due to insufficient balance")
        assert isinstance(error, errors.OutOfCredit) and error.upstream_wait is None
        assert "insufficient balance" in error.message


def test_rate_limits_rest_as_kimi_says() -> None:
    error = kimi_error(429, "engine_overloaded_error", "The engine is currently overloaded", retry_after=7)
    assert isinstance(error, errors.UpstreamRateLimited) and error.upstream_wait == 7
    error = kimi_error(429, "rate_limit_reached_error", "max RPM: 3, please try again after 2 seconds")
    assert isinstance(error, errors.UpstreamRateLimited) and error.upstream_wait == 2
    error = kimi_error(429, "rate_limit_reached_error", "TPM rate limit, current:9, limit:5")
    assert (
        isinstance(error, errors.UpstreamRateLimited)
        and error.upstream_wait is None
        and error.retry_after == 10
    )


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (401, "invalid_authentication_error", "Invalid Authentication", errors.UpstreamAuthError),
        (401, "incorrect_api_key_error", "Incorrect API key provided", errors.UpstreamAuthError),
        (403, "permission_denied_error", "Your IP is not allowed", errors.AccountBlocked),
        (404, "resource_not_found_error", "Model not found", errors.ModelNotFound),
        (400, "invalid_request_error", "Input token length too long", errors.ContextTooLong),
        (400, "invalid_request_error", "exceeded model token limit : 262144", errors.ContextTooLong),
        (400, "content_filter", "considered high risk", errors.InvalidRequest),
        (400, "invalid_request_error", "invalid temperature: only 1 is allowed", errors.InvalidRequest),
    ],
)
def test_error_table(status: int, kind: str, message: str, expected: type[errors.GatewayError]) -> None:
    error = kimi_error(status, kind, message)
    assert type(error) is expected and message in error.message
    assert error.status == expected.status


def test_kimi_code_wraps_its_error_and_keys_are_masked() -> None:
    body = {
        "type": "error",
        "error": {"type": "invalid_authentication_error", "message": "bad sk-abcdef0123456789"},
    }
    error = Moonshot().http_error(401, orjson.dumps(body), None, None)
    assert isinstance(error, errors.UpstreamAuthError) and "sk-abcdef0123456789" not in error.message


def test_an_error_inside_a_200_is_read_by_its_type() -> None:
    payload = fake_kimi.error_body("exceeded_current_quota_error", "insufficient balance")
    assert isinstance(Moonshot().business_error(payload), errors.OutOfCredit)
    assert Moonshot().business_error({"choices": [], "error": None}) is None


def test_usage_cached_tokens_in_openai_shape() -> None:
    profile = Moonshot()
    usage = {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23, "cached_tokens": 8}
    assert profile.normalize_usage(usage) == {
        "prompt_tokens": 20,
        "completion_tokens": 3,
        "total_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    already = {"prompt_tokens": 20, "prompt_tokens_details": {"cached_tokens": 8}}
    assert profile.normalize_usage(already) is already
    completion: dict[str, Any] = {"choices": [], "usage": dict(usage)}
    assert profile.normalize_completion(completion)
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 8}
    assert not profile.normalize_completion(completion)


def test_streamed_usage_moves_out_of_choices() -> None:
    rewriter = Moonshot().rewriter({"model": "kimi-k2.6", "stream": True})
    assert rewriter is not None
    events = EventRewriter(rewriter)
    delta = {"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}, "finish_reason": None}]}
    usage = {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23, "cached_tokens": 8}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": usage}]}
    raw = events.feed([orjson.dumps(delta), orjson.dumps(finish), b"[DONE]"])
    assert raw[2] == b"[DONE]"
    out = [orjson.loads(data) for data in raw[:2]]
    assert out[0] == delta
    assert out[1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 8}
    assert "usage" not in out[1]["choices"][0] and out[1]["choices"][0]["finish_reason"] == "stop"
