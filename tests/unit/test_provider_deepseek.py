"""The ``deepseek`` profile's pure rules: each intent's body and header, reasoning back on tool-call
turns, the parameter rules, the error table and usage; and that the fake DeepSeek accepts what the
profile sends and refuses what the real host refuses."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from iflow2api import errors, providers
from iflow2api.dialects.intent import Intent
from iflow2api.providers.deepseek import DeepSeek
from tests.fake_iflow import DEFAULT_KEY
from tests.fake_iflow.hosts import HOSTS

MODELS = ("deepseek-flash", "deepseek-v4-pro")
CALL: dict[str, Any] = {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}
]
LOOP: list[dict[str, Any]] = [
    {"role": "user", "content": "list"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "a b"},
]
FAKE = HOSTS["deepseek"]
HEADERS = {"authorization": f"Bearer {DEFAULT_KEY}", "content-type": "application/json"}


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "deepseek-flash", "messages": [{"role": "user", "content": "hi"}], **extra}


def judged(body: dict[str, Any]) -> str | None:
    """Why the fake DeepSeek refuses ``body``, or None."""
    return getattr(FAKE.judge(HEADERS, body, api_keys=[DEFAULT_KEY], models=MODELS), "reason", None)


def test_the_host_and_the_name_choose_the_profile() -> None:
    assert providers.for_host("https://api.deepseek.com") == "deepseek"
    assert providers.for_host("https://API.DeepSeek.com/v1/") == "deepseek"
    assert providers.for_host("https://api.deepseek.com.example.org/v1") == "generic"
    assert DeepSeek.base_url == "https://api.deepseek.com"
    assert DeepSeek().chat_url(DeepSeek.base_url) == "https://api.deepseek.com/chat/completions"
    assert DeepSeek.models["deepseek-v4-pro"].context_window == 1_048_576
    assert DeepSeek.models["deepseek-flash"].max_output == 393_216
    assert "deepseek-chat" not in DeepSeek.models  # retired on 2026-07-24


@pytest.mark.parametrize(
    ("request_extra", "intent", "switch", "effort", "header"),
    [
        ({}, None, None, None, None),
        ({"reasoning_effort": "none"}, None, "disabled", None, "disabled"),
        ({"reasoning_effort": "minimal"}, None, "enabled", "low", "enabled; reasoning_effort=low"),
        ({"reasoning_effort": "low"}, None, "enabled", "low", "enabled; reasoning_effort=low"),
        ({"reasoning_effort": "medium"}, None, "enabled", "high", "enabled; reasoning_effort=high"),
        ({"reasoning_effort": "high"}, None, "enabled", "high", "enabled; reasoning_effort=high"),
        # The host's own table sends xhigh to high (nearest_effort would round it up to max).
        ({"reasoning_effort": "xhigh"}, None, "enabled", "high", "enabled; reasoning_effort=high"),
        ({"reasoning_effort": "max"}, None, "enabled", "max", "enabled; reasoning_effort=max"),
        ({}, Intent("off"), "disabled", None, "disabled"),
        ({}, Intent("on", "medium", 8000), "enabled", "high", "enabled; reasoning_effort=high"),
        ({}, Intent("on", "low", 1024), "enabled", "low", "enabled; reasoning_effort=low"),
        ({}, Intent("adaptive"), "enabled", None, "enabled"),
        ({}, Intent("adaptive", "max"), "enabled", "max", "enabled; reasoning_effort=max"),
        # A client that speaks DeepSeek's own switch keeps it when it states no other intent.
        ({"thinking": {"type": "disabled"}}, None, "disabled", None, "disabled"),
        ({"thinking": {"type": "enabled"}, "reasoning_effort": "none"}, None, "disabled", None, "disabled"),
    ],
)
def test_each_intent_becomes_deepseeks_switch_and_level(
    request_extra: dict[str, Any],
    intent: Intent | None,
    switch: str | None,
    effort: str | None,
    header: str | None,
) -> None:
    request = chat(**request_extra)
    before = copy.deepcopy(request)
    prepared = DeepSeek().build_body(request, intent)
    assert prepared.body.get("thinking") == (None if switch is None else {"type": switch})
    assert prepared.body.get("reasoning_effort") == effort
    assert prepared.thinking == header
    assert request == before  # the client's request is never edited
    assert judged(prepared.body) is None


@pytest.mark.parametrize(("default", "switch"), [(True, "enabled"), (False, "disabled")])
def test_thinking_default_applies_without_intent(default: bool, switch: str) -> None:
    prepared = DeepSeek(thinking_default=default).build_body(chat(), None)
    assert prepared.body["thinking"] == {"type": switch}
    assert "reasoning_effort" not in prepared.body
    assert prepared.thinking == switch
    # An intent the client stated wins over the setting, in OpenAI's words or in DeepSeek's own.
    stated = DeepSeek(thinking_default=False).build_body(chat(reasoning_effort="max"), None)
    assert stated.thinking == "enabled; reasoning_effort=max"
    own = "enabled" if not default else "disabled"
    spoken = DeepSeek(thinking_default=default).build_body(chat(thinking={"type": own}), None)
    assert spoken.body["thinking"] == {"type": own} and spoken.thinking == own


def test_tool_call_turns_carry_reasoning_content() -> None:
    known = [*LOOP[:1], {**LOOP[1], "reasoning_content": "list it"}, LOOP[2]]
    unknown = DeepSeek().build_body(chat(messages=LOOP, tools=TOOLS), None).body
    assert unknown["messages"][1]["reasoning_content"] == ""
    assert "reasoning_content" not in LOOP[1]
    assert judged(unknown) is None
    kept = DeepSeek().build_body(chat(messages=known, tools=TOOLS), None).body
    assert kept["messages"] is known
    assert kept["messages"][1]["reasoning_content"] == "list it"
    filler = DeepSeek(options={"reasoning_filler": "(none kept)"}).build_body(chat(messages=LOOP), None)
    assert filler.body["messages"][1]["reasoning_content"] == "(none kept)"


def test_without_filling_the_fake_refuses_as_deepseek_does() -> None:
    body = (
        DeepSeek(options={"fill_reasoning": "false"}).build_body(chat(messages=LOOP, tools=TOOLS), None).body
    )
    assert "reasoning_content" not in body["messages"][1]
    rejection = FAKE.judge(HEADERS, body, api_keys=[DEFAULT_KEY], models=MODELS)
    assert rejection is not None and rejection.status == 400
    message = rejection.body["error"]["message"]
    assert message == "The `reasoning_content` in the thinking mode must be passed back to the API."
    error = DeepSeek().http_error(400, orjson.dumps(rejection.body), None, None)
    assert isinstance(error, errors.InvalidRequest) and error.code == "reasoning_content_missing"
    assert "fill_reasoning" in error.message
    # With thinking off the history needs no reasoning.
    off = {**body, "thinking": {"type": "disabled"}}
    assert judged(off) is None


def test_reasoning_when_off_is_an_option() -> None:
    off = chat(messages=LOOP, reasoning_effort="none")
    assert DeepSeek().build_body(off, None).body["messages"][1]["reasoning_content"] == ""
    left = DeepSeek(options={"reasoning_when_off": "false"}).build_body(off, None).body
    assert left["messages"] is LOOP


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "ls"}}])
def test_a_forced_tool_choice_turns_thinking_off_or_becomes_auto(choice: Any) -> None:
    request = chat(tools=TOOLS, tool_choice=choice, reasoning_effort="high")
    off = DeepSeek().build_body(request, None)
    assert off.body["tool_choice"] == choice
    assert off.body["thinking"] == {"type": "disabled"} and "reasoning_effort" not in off.body
    assert off.thinking == "disabled"
    assert judged(off.body) is None
    auto = DeepSeek(options={"forced_tool_choice": "auto"}).build_body(request, None)
    assert auto.body["tool_choice"] == "auto"
    assert auto.thinking == "enabled; reasoning_effort=high"
    assert judged(auto.body) is None
    # The host thinks by default, so a request without intent is turned off too.
    assert DeepSeek().build_body(chat(tools=TOOLS, tool_choice=choice), None).thinking == "disabled"
    # And the fake refuses it as DeepSeek does.
    raw = {**chat(tools=TOOLS, tool_choice=choice), "thinking": {"type": "enabled"}}
    assert judged(raw) is not None


def test_parameter_rules() -> None:
    strict_tools: list[dict[str, Any]] = [
        {"type": "function", "function": {**TOOLS[0]["function"], "strict": True}}
    ]
    request = chat(
        max_completion_tokens=100,
        logprobs=True,
        top_logprobs=2,
        tools=strict_tools,
        temperature=0.3,
        reasoning_effort="high",
        stream=True,
    )
    body = DeepSeek().build_body(request, None).body
    assert body["max_tokens"] == 100 and "max_completion_tokens" not in body
    assert "logprobs" not in body and "top_logprobs" not in body
    assert "strict" not in body["tools"][0]["function"]
    assert strict_tools[0]["function"]["strict"] is True
    # Ignored while thinking, never refused: it stays.
    assert body["temperature"] == 0.3
    assert body["stream_options"] == {"include_usage": True}
    assert judged(body) is None
    # Thinking off: logprobs are the client's to have.
    off = DeepSeek().build_body({**request, "reasoning_effort": "none"}, None).body
    assert off["logprobs"] is True
    kept = DeepSeek(options={"drop_strict": "false"}).build_body(request, None).body
    assert kept["tools"][0]["function"]["strict"] is True


def test_an_unknown_option_is_refused() -> None:
    with pytest.raises(ValueError, match="deepseek has no option"):
        DeepSeek(options={"filler": ""})


def deepseek_error(message: str, kind: str = "invalid_request_error") -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": "invalid_request_error"}}
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "shown"),
    [
        (402, deepseek_error("Insufficient Balance", "unknown_error"), errors.OutOfCredit, 429),
        (
            401,
            deepseek_error("Authentication Fails, Your api key: ****abcd is invalid", "authentication_error"),
            errors.UpstreamAuthError,
            401,
        ),
        (429, deepseek_error("Rate Limit Reached"), errors.UpstreamRateLimited, 429),
        (
            400,
            deepseek_error(
                "This model's maximum context length is 1048565 tokens. However, you requested 1551241 tokens"
            ),
            errors.ContextTooLong,
            400,
        ),
        (400, deepseek_error("Model Not Exist"), errors.ModelNotFound, 404),
        (400, deepseek_error("Thinking mode does not support this tool_choice"), errors.InvalidRequest, 400),
        (422, deepseek_error("Invalid Parameters"), errors.InvalidRequest, 422),
        (500, deepseek_error("Server Error", "server_error"), errors.UpstreamError, 502),
        (503, b"Server Overloaded", errors.UpstreamError, 502),
    ],
)
def test_error_table(status: int, body: bytes, kind: type[errors.GatewayError], shown: int) -> None:
    error = DeepSeek().http_error(status, body, None, None)
    assert type(error) is kind
    assert error.status == shown
    assert "abcd" not in error.message or "****abcd" in error.message


def test_out_of_credit_and_rate_limit_details() -> None:
    credit = DeepSeek().http_error(402, deepseek_error("Insufficient Balance"), None, None)
    assert "Insufficient Balance" in credit.message and "platform.deepseek.com" in credit.message
    limited = DeepSeek().http_error(429, deepseek_error("Rate Limit Reached"), None, 7.0)
    assert limited.upstream_wait == 7.0
    choice = DeepSeek().http_error(
        400, deepseek_error("Thinking mode does not support this tool_choice"), None, None
    )
    assert choice.param == "tool_choice"


def test_usage_gets_openais_cached_tokens() -> None:
    usage = {"prompt_tokens": 10, "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4}
    assert DeepSeek().normalize_usage(usage)["prompt_tokens_details"] == {"cached_tokens": 6}
    assert "prompt_tokens_details" not in usage
    both = {
        **usage,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert DeepSeek().normalize_usage(both) is both
    plain = {"prompt_tokens": 10}
    assert DeepSeek().normalize_usage(plain) is plain


def test_the_fake_answers_in_deepseeks_shapes() -> None:
    host = FAKE
    message = {"role": "assistant", "content": "x"}
    completion = {"choices": [{"index": 0, "message": message}], "usage": {"prompt_tokens": 5}}
    thought = host.shape_completion(copy.deepcopy(completion), chat())
    assert thought["choices"][0]["message"]["reasoning_content"]
    assert (
        thought["usage"]["prompt_cache_hit_tokens"] == 0 and thought["usage"]["prompt_cache_miss_tokens"] == 5
    )
    plain = host.shape_completion(copy.deepcopy(completion), chat(thinking={"type": "disabled"}))
    assert "reasoning_content" not in plain["choices"][0]["message"]
    assert judged(chat(model="deepseek-chat")) == "model 'deepseek-chat' is not served"
    assert judged(chat(reasoning_effort="medium")) is not None
    assert judged(chat(reasoning_effort="low", thinking={"type": "disabled"})) is not None
