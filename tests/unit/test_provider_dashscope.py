"""The ``dashscope`` profile: what it sends for each thinking intent, and how it reads DashScope's errors."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import orjson
import pytest

from iflow2api import errors
from iflow2api.dialects.intent import Intent
from iflow2api.providers import for_host
from iflow2api.providers.base import Prepared
from iflow2api.providers.dashscope import DashScope
from tests.fake_iflow.hosts.dashscope import HOST, arrearage
from tests.unit.profile_fakes import INTENTS, TOOL_LOOP, verdict

MODELS = ("qwen3.7-plus", "qwen3.6-plus", "qwq-plus", "deepseek-v4-flash", "kimi-k2.6")
TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]


def request(model: str = "qwen3.7-plus", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}


def build(req: dict[str, Any], intent: Intent | None = None, **options: str) -> Prepared:
    return DashScope(options=options).build_body(req, intent)


@pytest.mark.parametrize(
    "url",
    [
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "https://dashscope-us.aliyuncs.com/compatible-mode/v1",
        "https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1",
        "https://ws-1234.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1",
    ],
)
def test_every_documented_region_is_dashscope(url: str) -> None:
    assert for_host(url) == "dashscope"


def test_thinking_off_is_enable_thinking_false_and_no_stream_of_its_own() -> None:
    prepared = build(request(reasoning_effort="none"))
    assert prepared.body == {
        "model": "qwen3.7-plus",
        "messages": [{"role": "user", "content": "hi"}],
        "enable_thinking": False,
    }
    assert prepared.thinking == "disabled" and not prepared.stream


def test_thinking_on_for_a_client_that_does_not_stream_is_called_streaming() -> None:
    prepared = build(request(reasoning_effort="high", stream=False))
    assert prepared.stream
    assert prepared.body["stream"] is True and prepared.body["stream_options"] == {"include_usage": True}
    assert prepared.body["enable_thinking"] is True and "reasoning_effort" not in prepared.body
    # high and above: the model's own budget
    assert "thinking_budget" not in prepared.body and prepared.thinking == "enabled"


def test_a_streaming_client_streams_as_it_asked() -> None:
    prepared = build(request(reasoning_effort="low", stream=True))
    assert not prepared.stream  # nothing to gather: the client reads the stream itself
    assert prepared.body["stream_options"] == {"include_usage": True}
    assert prepared.body["thinking_budget"] == 4096
    assert prepared.thinking == "enabled; thinking_budget=4096"


def test_anthropics_budget_is_the_thinking_budget_within_the_set_limit() -> None:
    assert build(request(), Intent("on", "medium", 8000)).body["thinking_budget"] == 8000
    capped = build(request(), Intent("on", "high", 50_000), max_thinking_budget="20000")
    assert capped.body["thinking_budget"] == 20_000
    assert build(request(), Intent("on", "low", 0)).body["thinking_budget"] == 1  # never zero or less


def test_effort_budgets_is_an_option() -> None:
    prepared = build(request(reasoning_effort="high"), effort_budgets="high=30000")
    assert prepared.body["thinking_budget"] == 30_000


def test_off_on_a_thinking_only_model_is_its_lowest_level_and_streams() -> None:
    prepared = build(request("qwq-plus", reasoning_effort="none"))
    assert "enable_thinking" not in prepared.body
    assert prepared.body["thinking_budget"] == 1024 and prepared.stream
    assert prepared.thinking == "enabled (always on); thinking_budget=1024"


def test_no_intent_leaves_the_host_its_default_but_streams_in_case_it_thinks() -> None:
    prepared = build(request())
    assert "enable_thinking" not in prepared.body and prepared.thinking is None
    assert prepared.stream
    plain = build(request("qwen3.5-plus"), default_may_think="false")
    assert plain == Prepared(request("qwen3.5-plus"))


def test_thinking_default_setting_applies_without_intent() -> None:
    prepared = DashScope(thinking_default=False).build_body(request(), None)
    assert prepared.body["enable_thinking"] is False and not prepared.stream


def test_forced_tool_choice_becomes_auto_only_while_thinking() -> None:
    forced = {"type": "function", "function": {"name": "read"}}
    assert (
        build(request(tools=TOOLS, tool_choice=forced, reasoning_effort="low")).body["tool_choice"] == "auto"
    )
    assert (
        build(request(tools=TOOLS, tool_choice="required", reasoning_effort="none")).body["tool_choice"]
        == "required"
    )
    assert build(request("qwq-plus", tools=TOOLS, tool_choice="required")).body["tool_choice"] == "auto"


def test_preserve_thinking_for_the_models_that_drop_it_otherwise() -> None:
    assert build(request("qwen3.6-plus", reasoning_effort="high")).body["preserve_thinking"] is True
    assert "preserve_thinking" not in build(request("qwen3.5-plus", reasoning_effort="high")).body
    assert "preserve_thinking" not in build(request("qwen3.6-plus", reasoning_effort="none")).body


def test_deepseek_and_kimi_get_reasoning_on_tool_call_turns_while_thinking() -> None:
    client = request(
        "deepseek-v4-flash", messages=copy.deepcopy(TOOL_LOOP), tools=TOOLS, reasoning_effort="high"
    )
    before = copy.deepcopy(client)
    body = build(client).body
    assert body["messages"][1]["reasoning_content"] == ""
    assert client == before  # the client's dicts are never edited
    off = build(request("deepseek-v4-flash", messages=TOOL_LOOP, reasoning_effort="none")).body
    assert "reasoning_content" not in off["messages"][1]
    qwen = build(request("qwen3.7-plus", messages=TOOL_LOOP, reasoning_effort="high")).body
    assert "reasoning_content" not in qwen["messages"][1]


def test_developer_turns_are_system_turns_and_store_is_left_out() -> None:
    client = request(
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        store=True,
    )
    body = build(client, Intent("off")).body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."} and "store" not in body
    assert client["messages"][0]["role"] == "developer"


@pytest.mark.parametrize(("model", "intent"), list(itertools.product(MODELS, INTENTS)))
def test_what_the_profile_sends_the_fake_accepts(model: str, intent: Intent | None) -> None:
    profile = DashScope()
    for stream, tool_choice in itertools.product((False, True), (None, "required")):
        extra: dict[str, Any] = {"stream": stream, "tools": TOOLS, "messages": TOOL_LOOP}
        if tool_choice is not None:
            extra["tool_choice"] = tool_choice
        body = profile.build_body(request(model, **extra), intent).body
        assert verdict(profile, HOST(), body, MODELS) is None, (stream, tool_choice, body)


def test_the_fake_refuses_thinking_without_a_stream_as_dashscope_does() -> None:
    rejection = verdict(DashScope(), HOST(), request(enable_thinking=True), MODELS)
    assert rejection is not None and rejection.status == 400
    assert (
        "parameter.enable_thinking must be set to false for non-streaming calls"
        in rejection.body["error"]["message"]
    )


def error(status: int, payload: dict[str, Any], retry_after: float | None = None) -> errors.GatewayError:
    return DashScope().http_error(status, orjson.dumps(payload), None, retry_after)


def test_arrearage_is_out_of_credit_whatever_its_status() -> None:
    assert isinstance(error(400, arrearage()), errors.OutOfCredit)
    assert isinstance(error(403, arrearage()), errors.OutOfCredit)
    in_stream = DashScope().business_error(arrearage())
    assert isinstance(in_stream, errors.OutOfCredit)


def test_a_throttle_that_says_insufficient_quota_is_a_rate_limit_not_out_of_credit() -> None:
    payload = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    limited = error(429, payload, retry_after=7.0)
    assert isinstance(limited, errors.UpstreamRateLimited) and limited.upstream_wait == 7.0
    chunk_error = DashScope().business_error(payload)
    assert isinstance(chunk_error, errors.UpstreamRateLimited)


def test_the_other_errors() -> None:
    assert isinstance(
        error(401, {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}),
        errors.UpstreamAuthError,
    )
    long = {
        "error": {
            "message": "<400> InternalError.Algo.InvalidParameter: "
            "Range of input length should be [1, 129024]"
        }
    }
    assert isinstance(error(400, long), errors.ContextTooLong)
    assert isinstance(
        error(404, {"error": {"message": "Model not exist.", "code": "ModelNotFound"}}),
        errors.ModelNotFound,
    )
    bad = error(400, {"error": {"message": "bad", "code": "invalid_parameter_error"}})
    assert type(bad) is errors.InvalidRequest and bad.code == "invalid_parameter_error"
    assert DashScope().business_error({"choices": []}) is None
