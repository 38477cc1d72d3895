"""The ``zhipu`` profile's pure rules: the thinking fields per model and intent (and the header's
words), the parameter rules, the Coding Plan endpoint, the error table, the failed finish reasons;
and that the fake Zhipu accepts what the profile sends and refuses what the real host refuses."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from iflow2api import errors, providers, settings
from iflow2api.dialects.intent import Intent
from iflow2api.providers.zhipu import FinishRewriter, Zhipu, reset_in
from tests.fake_iflow import DEFAULT_KEY
from tests.fake_iflow.hosts import HOSTS
from tests.fake_iflow.hosts.zhipu import ALWAYS_THINKS

MODELS = ("glm-5.3", "glm-5.3-flash", "glm-5.2", "glm-4.7", "glm-4-32b-0414-128k")
HEADERS = {"authorization": f"Bearer {DEFAULT_KEY}", "content-type": "application/json"}
STANDARD = "https://api.z.ai/api/paas/v4"
CODING = "https://api.z.ai/api/coding/paas/v4"


@dataclass(frozen=True)
class Account:
    base_url: str = STANDARD
    api_key: str = DEFAULT_KEY


def chat(model: str = "glm-4.7", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def sent(
    request: dict[str, Any], intent: Intent | None = None, *, base_url: str = STANDARD, **options: str
) -> tuple[dict[str, Any], str | None]:
    """The body the profile sends for ``request`` (and the thinking header's words)."""
    outgoing = Zhipu(options=options).prepare(Account(base_url), request, intent)
    return orjson.loads(outgoing.body), outgoing.thinking


def judged(body: dict[str, Any]) -> str | None:
    rejection = HOSTS["zhipu"].judge(HEADERS, body, api_keys=[DEFAULT_KEY], models=MODELS)
    return None if rejection is None else rejection.reason


def test_the_hosts_and_the_name_choose_the_profile() -> None:
    assert providers.for_host("https://open.bigmodel.cn/api/paas/v4") == "zhipu"
    assert providers.for_host("https://API.Z.AI/api/coding/paas/v4/") == "zhipu"
    assert providers.for_host("https://api.z.ai.example.org/v1") == "generic"
    assert Zhipu().chat_url(Zhipu.base_url) == "https://api.z.ai/api/paas/v4/chat/completions"
    assert Zhipu.models["glm-5.3"].context_window == 1_048_576
    assert Zhipu.models["glm-4.5"].max_output == 98_304


def enabled(effort: str) -> dict[str, Any]:
    return {"thinking": {"type": "enabled"}, "reasoning_effort": effort}


# model, intent, what goes in the body, the header's words
THINKING: list[tuple[str, Intent, dict[str, Any], str | None]] = [
    ("glm-4.7", Intent(), {}, None),
    ("glm-4.7", Intent("off"), {"thinking": {"type": "disabled"}}, "disabled"),
    ("glm-4.7", Intent("on", "high"), {"thinking": {"type": "enabled"}}, "enabled"),
    ("glm-4.7", Intent("adaptive"), {"thinking": {"type": "enabled"}}, "enabled"),
    ("glm-5.2", Intent("off"), {"thinking": {"type": "disabled"}}, "disabled"),
    ("glm-5.2", Intent("on", "low"), enabled("high"), "enabled; reasoning_effort=high"),
    ("glm-5.2", Intent("on", "xhigh"), enabled("max"), "enabled; reasoning_effort=max"),
    ("glm-5.3", Intent(), {}, None),
    ("glm-5.3", Intent("off"), enabled("low"), "enabled; reasoning_effort=low (always thinks)"),
    ("glm-5.3", Intent("on", "medium", 8000), enabled("high"), "enabled; reasoning_effort=high"),
    ("glm-5.3-flash", Intent("on", "minimal"), enabled("low"), "enabled; reasoning_effort=low"),
    ("glm-5.3", Intent("adaptive"), {"thinking": {"type": "enabled"}}, "enabled"),
    ("glm-4-32b-0414-128k", Intent("on", "high"), {}, "none (the model does not think)"),
    ("glm-4-32b-0414-128k", Intent(), {}, None),
]


@pytest.mark.parametrize(("model", "intent", "fields", "said"), THINKING)
def test_each_intent_becomes_the_models_own_switch(
    model: str, intent: Intent, fields: dict[str, Any], said: str | None
) -> None:
    body, thinking = sent(chat(model, reasoning_effort="high"), intent)
    assert {name: body[name] for name in ("thinking", "reasoning_effort") if name in body} == fields
    assert thinking == said
    assert judged(body) is None  # the host takes it


def test_reasoning_effort_is_read_when_no_intent_is_given() -> None:
    body, thinking = sent(chat("glm-5.3", reasoning_effort="none"))
    assert body["reasoning_effort"] == "low" and thinking == "enabled; reasoning_effort=low (always thinks)"
    body, _ = sent(chat("glm-4.7", reasoning_effort="xhigh"))
    assert "reasoning_effort" not in body and body["thinking"] == {"type": "enabled"}


def test_thinking_default_applies_without_intent() -> None:
    outgoing = Zhipu(thinking_default=False).prepare(Account(), chat("glm-4.7"))
    assert orjson.loads(outgoing.body)["thinking"] == {"type": "disabled"}


def test_the_fake_refuses_disabled_thinking_on_glm_5_3_as_the_host_does() -> None:
    rejection = HOSTS["zhipu"].judge(
        HEADERS, chat("glm-5.3", thinking={"type": "disabled"}), api_keys=[DEFAULT_KEY], models=MODELS
    )
    assert rejection is not None and rejection.status == 400
    assert rejection.body == {"error": {"code": "1210", "message": ALWAYS_THINKS}}
    assert judged(chat("glm-5.3", reasoning_effort="medium")) is not None  # not one of low/high/max
    assert judged(chat("glm-5.2", reasoning_effort="low")) is not None


def test_the_effort_levels_are_options() -> None:
    body, thinking = sent(chat("glm-5.3"), Intent("on", "medium"), glm_5_3_efforts="low/medium/high/max")
    assert body["reasoning_effort"] == "medium" and thinking == "enabled; reasoning_effort=medium"
    with pytest.raises(ValueError, match="glm_5_3_efforts"):
        Zhipu(options={"glm_5_3_efforts": " / "})
    with pytest.raises(ValueError, match="plan"):
        Zhipu(options={"plan": "gold"})


def test_the_coding_plan_preserves_thinking_and_the_standard_endpoint_leaves_its_default() -> None:
    body, thinking = sent(chat("glm-4.7"), Intent("on", "high"), base_url=CODING)
    assert body["thinking"] == {"type": "enabled", "clear_thinking": False}
    assert thinking == "enabled; clear_thinking=false"
    body, thinking = sent(chat("glm-4.7"), base_url=CODING)
    assert body["thinking"] == {"type": "enabled", "clear_thinking": False}
    body, _ = sent(chat("glm-4.7"), Intent("off"), base_url=CODING)
    assert body["thinking"] == {"type": "disabled"}
    body, _ = sent(chat("glm-4.7"), Intent("on", "high"))
    assert body["thinking"] == {"type": "enabled"}
    body, _ = sent(chat("glm-4.7"), Intent("on", "high"), preserved_thinking="on")
    assert body["thinking"] == {"type": "enabled", "clear_thinking": False}
    body, _ = sent(chat("glm-4.7"), Intent("on", "high"), base_url=CODING, preserved_thinking="off")
    assert body["thinking"] == {"type": "enabled", "clear_thinking": True}
    body, _ = sent(chat("glm-4.7"), Intent("on", "high"), base_url="http://127.0.0.1:1/v1", plan="coding")
    assert body["thinking"]["clear_thinking"] is False
    assert judged(body) is None


def test_earlier_reasoning_goes_back_in_order_as_it_came() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": "", "reasoning_content": "first", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "a"},
        {"role": "assistant", "content": "", "reasoning_content": "second", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "b"},
    ]
    body, _ = sent({"model": "glm-5.3", "messages": messages}, base_url=CODING)
    assert [m.get("reasoning_content") for m in body["messages"]] == [None, "first", None, "second", None]


def test_the_parameter_rules() -> None:
    tool = {
        "type": "function",
        "function": {"name": "ls", "parameters": {"type": "object"}, "strict": True},
        "strict": True,
    }
    request = chat(
        "glm-4.7",
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=500_000,
        stop=["x", "y"],
        temperature=1.5,
        top_p=0,
        tools=[tool],
        tool_choice="required",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    )
    original = copy.deepcopy(request)
    body, _ = sent(request)
    assert request == original  # the client's request is never edited
    assert body["max_tokens"] == 131_072 and "max_completion_tokens" not in body
    assert "stream_options" not in body and body["stream"] is True
    assert body["stop"] == ["x"]
    assert (body["temperature"], body["top_p"]) == (1, 0.01)
    assert body["tools"] == [
        {"type": "function", "function": {"description": "", "name": "ls", "parameters": {"type": "object"}}}
    ]
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {"type": "json_object"}
    assert judged(body) is None
    assert judged(request) is not None  # as the client sent it, the host refuses it


def test_tool_choice_none_offers_no_tools() -> None:
    tool = {"type": "function", "function": {"name": "ls", "description": "", "parameters": {}}}
    body, _ = sent(chat(tools=[tool], tool_choice="none"))
    assert "tools" not in body and "tool_choice" not in body


def test_stream_options_can_be_kept() -> None:
    body, _ = sent(chat(stream=True, stream_options={"include_usage": True}), stream_options="true")
    assert body["stream_options"] == {"include_usage": True}


def zhipu_error(
    status: int, code: str | int, message: str, retry_after: float | None = None
) -> errors.GatewayError:
    payload = orjson.dumps({"error": {"code": code, "message": message}})
    return Zhipu().http_error(status, payload, None, retry_after)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "1000", errors.UpstreamAuthError),
        (401, "1002", errors.UpstreamAuthError),
        (429, "1302", errors.UpstreamRateLimited),
        (429, 1305, errors.UpstreamRateLimited),
        (429, "1113", errors.OutOfCredit),
        (400, "1261", errors.ContextTooLong),
        (400, "1211", errors.ModelNotFound),
        (400, "1210", errors.InvalidRequest),
        (400, "1214", errors.InvalidRequest),
    ],
)
def test_the_business_codes(status: int, code: str, kind: type[errors.GatewayError]) -> None:
    error = zhipu_error(status, code, "words")
    assert type(error) is kind
    assert "words" in error.message


def test_a_rate_limit_keeps_the_hosts_retry_after() -> None:
    error = zhipu_error(429, "1302", "High concurrency usage of this API", retry_after=7)
    assert error.upstream_wait == 7
    assert zhipu_error(429, "1302", "slow").upstream_wait is None


def test_arrears_are_out_of_credit_and_say_why_a_key_may_be_on_the_wrong_plan() -> None:
    error = zhipu_error(429, "1113", "Your account is in arrears, please recharge and try again")
    assert isinstance(error, errors.OutOfCredit) and error.upstream_wait is None
    assert "/api/coding/paas/v4" in error.message


def test_a_spent_plan_rests_until_the_time_it_names() -> None:
    error = zhipu_error(
        429, "1310", "Weekly/Monthly Limit Exhausted. Your limit will reset at 2099-01-01T00:00:00Z"
    )
    assert (
        isinstance(error, errors.OutOfCredit)
        and error.upstream_wait is not None
        and error.upstream_wait > 3600
    )
    assert reset_in("已达到 5 小时的使用上限。您的限额将在 2026-08-25 07:41:44 重置。", 1787614904.0) == 0.0
    assert reset_in("reset at 2026-08-25T07:41:44+08:00", 1787611304.0) == 3600.0
    assert reset_in("no time here", 0) is None
    # A reset already past (a skewed clock) is no rest of 0 s, retried at once: a person's call.
    past = zhipu_error(429, "1310", "Limit Exhausted. Your limit will reset at 2001-01-01T00:00:00Z")
    assert isinstance(past, errors.OutOfCredit) and past.upstream_wait is None


def test_unknown_codes_and_bodies_fall_back_to_the_status() -> None:
    assert type(zhipu_error(500, "9999", "odd")).__name__ == "UpstreamError"
    assert isinstance(Zhipu().http_error(429, b"busy", None, None), errors.UpstreamRateLimited)
    top_level = orjson.dumps({"code": 1113, "message": "arrears"})  # the OpenAPI's own shape
    assert isinstance(Zhipu().http_error(429, top_level, None, None), errors.OutOfCredit)


def test_errors_inside_a_200() -> None:
    profile = Zhipu()
    assert isinstance(profile.business_error({"error": {"code": "1113", "message": "x"}}), errors.OutOfCredit)
    blocked = {"choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "sensitive"}]}
    error = profile.business_error(blocked)
    assert isinstance(error, errors.InvalidRequest) and error.code == "content_filter"
    full = {
        "choices": [
            {"index": 0, "message": {"content": "x"}, "finish_reason": "model_context_window_exceeded"}
        ]
    }
    assert isinstance(profile.business_error(full), errors.ContextTooLong)
    fine = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}]}
    assert profile.business_error(fine) is None


def test_the_stream_rewriter_turns_a_failed_finish_into_the_hosts_error() -> None:
    rewriter = Zhipu().rewriter(chat())
    assert isinstance(rewriter, FinishRewriter)
    chunk = {"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}, "finish_reason": None}]}
    assert rewriter.feed(chunk) == [chunk]
    [error] = rewriter.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "sensitive"}]})
    assert error["error"]["code"] == "1301" and "choices" not in error
    assert isinstance(Zhipu().business_error(error), errors.InvalidRequest)
    assert rewriter.finish() == []


def test_the_options_pass_through_the_setting() -> None:
    options = settings._provider_options("zhipu.glm_5_3_efforts=low/medium/high/max, zhipu.plan=coding")
    profile = providers.Profiles(thinking_default=None, options=options).for_account(
        GlmAccount(kind="openai-compatible", base_url=STANDARD, provider=None)
    )
    assert isinstance(profile, Zhipu) and profile.coding(STANDARD)
    body = orjson.loads(profile.prepare(Account(), chat("glm-5.3"), Intent("on", "medium")).body)
    assert body["reasoning_effort"] == "medium" and body["thinking"]["clear_thinking"] is False


@dataclass(frozen=True)
class GlmAccount:
    kind: str
    base_url: str
    provider: str | None
