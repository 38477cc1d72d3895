"""The ``siliconflow`` profile: what it sends for each thinking intent, its usage and its errors."""

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
from iflow2api.providers.siliconflow import SiliconFlow
from tests.fake_iflow.hosts.siliconflow import ECHO_MESSAGE, HOST, out_of_credit
from tests.unit.profile_fakes import INTENTS, TOOL_LOOP, verdict

FLASH, PRO, V4, GLM, KIMI, QWEN = (
    "deepseek-ai/DeepSeek-V4-Flash",
    "deepseek-ai/DeepSeek-V4-Pro",
    "Pro/deepseek-ai/DeepSeek-V4",
    "Pro/zai-org/GLM-5.2",
    "Pro/moonshotai/Kimi-K2.5",
    "Qwen/Qwen3.5-27B",
)
MODELS = (FLASH, PRO, V4, GLM, KIMI, QWEN)


def request(model: str = QWEN, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}


def build(req: dict[str, Any], intent: Intent | None = None, **options: str) -> Prepared:
    return SiliconFlow(options=options).build_body(req, intent)


@pytest.mark.parametrize("host", ["api.siliconflow.cn", "api.siliconflow.com", "api.ap.siliconflow.com"])
def test_its_hosts(host: str) -> None:
    assert for_host(f"https://{host}/v1") == "siliconflow"


def test_no_intent_sends_nothing_of_ours() -> None:
    assert build(request()) == Prepared(request())


def test_off_is_enable_thinking_false() -> None:
    prepared = build(request(reasoning_effort="none"))
    assert prepared.body == {**request(), "enable_thinking": False} and prepared.thinking == "disabled"


def test_effort_becomes_a_budget_within_the_documented_range() -> None:
    low = build(request(reasoning_effort="low"))
    assert low.body["enable_thinking"] is True and low.body["thinking_budget"] == 4096
    assert "reasoning_effort" not in low.body and low.thinking == "enabled; thinking_budget=4096"
    assert build(request(), Intent("on", "low", 10)).body["thinking_budget"] == 128
    assert build(request(), Intent("on", "high", 100_000)).body["thinking_budget"] == 32_768
    assert "thinking_budget" not in build(request(reasoning_effort="high")).body  # the model's own


@pytest.mark.parametrize(
    ("effort", "sent"),
    [
        ("minimal", "high"),
        ("low", "high"),
        ("medium", "high"),
        ("high", "high"),
        ("xhigh", "max"),
        ("max", "max"),
    ],
)
def test_reasoning_effort_on_the_models_that_take_it(effort: str, sent: str) -> None:
    prepared = build(request(FLASH, reasoning_effort=effort))
    assert prepared.body["reasoning_effort"] == sent and prepared.body["enable_thinking"] is True
    assert "thinking_budget" not in prepared.body
    assert prepared.thinking == f"enabled; reasoning_effort={sent}"


def test_off_on_a_model_that_cannot_stop_thinking_is_its_lowest_level() -> None:
    pro = build(request(V4, reasoning_effort="none"))
    assert "enable_thinking" not in pro.body and pro.body["reasoning_effort"] == "high"
    assert pro.thinking == "enabled (always on); reasoning_effort=high"
    budgeted = build(request(PRO, reasoning_effort="none"))
    assert budgeted.body["thinking_budget"] == 1024 and "enable_thinking" not in budgeted.body


def test_deepseek_and_kimi_get_their_reasoning_back_while_thinking() -> None:
    client = request(KIMI, messages=copy.deepcopy(TOOL_LOOP), reasoning_effort="medium")
    before = copy.deepcopy(client)
    body = build(client).body
    assert body["messages"][1]["reasoning_content"] == ""
    assert client == before
    assert (
        "reasoning_content"
        not in build(request(KIMI, messages=TOOL_LOOP, reasoning_effort="none")).body["messages"][1]
    )
    assert (
        "reasoning_content"
        not in build(request(QWEN, messages=TOOL_LOOP, reasoning_effort="high")).body["messages"][1]
    )


def test_options_move_models_between_the_lists() -> None:
    prepared = build(request(QWEN, reasoning_effort="high"), effort_models="qwen/*")
    assert prepared.body["reasoning_effort"] == "high"
    assert (
        build(request(FLASH, reasoning_effort="none"), always_thinking="*flash*").body["reasoning_effort"]
        == "high"
    )


@pytest.mark.parametrize(("model", "intent"), list(itertools.product(MODELS, INTENTS)))
def test_what_the_profile_sends_the_fake_accepts(model: str, intent: Intent | None) -> None:
    profile = SiliconFlow()
    for stream in (False, True):
        body = profile.build_body(request(model, stream=stream, messages=TOOL_LOOP), intent).body
        rejection = verdict(profile, HOST(), body, MODELS)
        assert rejection is None, (stream, body, rejection)


def test_the_fake_refuses_a_thinking_tool_loop_without_reasoning_as_siliconflow_does() -> None:
    body = request(FLASH, messages=TOOL_LOOP, enable_thinking=True)
    rejection = verdict(SiliconFlow(), HOST(), body, MODELS)
    assert rejection is not None and rejection.body == {"code": 20015, "message": ECHO_MESSAGE, "data": None}


def test_cache_hits_become_cached_tokens() -> None:
    profile = SiliconFlow()
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
    }
    assert profile.normalize_usage(usage)["prompt_tokens_details"] == {"cached_tokens": 64}
    assert "prompt_tokens_details" not in usage
    given = {**usage, "prompt_tokens_details": {"cached_tokens": 60}}
    assert profile.normalize_usage(given) is given
    assert profile.normalize_usage({"prompt_tokens": 1}) == {"prompt_tokens": 1}


def error(status: int, body: object, retry_after: float | None = None) -> errors.GatewayError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return SiliconFlow().http_error(status, raw, None, retry_after)


def test_errors() -> None:
    assert isinstance(error(403, out_of_credit()), errors.OutOfCredit)
    assert isinstance(
        error(
            400, {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}
        ),
        errors.ModelNotFound,
    )
    assert isinstance(error(401, b'"Invalid token"'), errors.UpstreamAuthError)
    assert isinstance(error(401, b"Invalid token"), errors.UpstreamAuthError)
    assert isinstance(error(403, b'"Forbidden"'), errors.AccountBlocked)
    message = "Request was rejected due to rate limiting. Details:TPM limit reached."
    limited = error(429, {"message": message, "data": None}, retry_after=3.0)
    assert isinstance(limited, errors.UpstreamRateLimited) and limited.upstream_wait == 3.0
    assert isinstance(
        error(503, {"code": 50505, "message": "Model service overloaded.", "data": None}),
        errors.UpstreamError,
    )
    echo = error(400, {"code": 20015, "message": ECHO_MESSAGE, "data": None})
    assert type(echo) is errors.InvalidRequest and echo.code == "20015"
    assert isinstance(
        error(400, {"code": 20015, "message": "the context length exceeds the limit"}), errors.ContextTooLong
    )
    quoted = error(401, b'"Invalid token sk-0123456789abcdef0123456789abcdef"')
    assert "456789abcdef0123" not in quoted.message
