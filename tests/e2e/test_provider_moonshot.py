"""Kimi accounts (``provider = "moonshot"``) through the gateway, driven by the real SDKs.

The upstream is the fake Kimi (``tests/fake_iflow/hosts/moonshot.py``): it refuses what Kimi
refuses (a tool loop without reasoning while thinking, changed fixed sampling, ``thinking:
disabled`` on a model that always thinks...), so each test passes only if the profile spoke Kimi.
Two accounts, two keys on the one fake: the ``Authorization`` header tells which one served.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import Completion, FakeIflow
from tests.fake_iflow.hosts import moonshot as fake_kimi

KEY_A = "sk-kimi-" + "a" * 32
KEY_B = "sk-kimi-" + "b" * 32
MODELS = ["kimi-k3", "kimi-k2.7-code", "kimi-k2.6", "moonshot-v1-8k"]
THINKING = "x-iflow2api-thinking"
LS: dict[str, Any] = {
    "type": "function",
    "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}},
}
ANTHROPIC_LS = {"name": "ls", "input_schema": {"type": "object", "properties": {}}}


def call(call_id: str, name: str = "ls", arguments: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def answered(call_id: str, result: str) -> list[dict[str, Any]]:
    """An assistant turn that called ``ls`` as an OpenAI client sends it back (no reasoning), and
    the tool's answer."""
    turn = {"role": "assistant", "content": None, "tool_calls": [call(call_id)]}
    return [turn, {"role": "tool", "tool_call_id": call_id, "content": result}]


def config_text(fake: FakeIflow) -> str:
    return "".join(
        f'[[accounts]]\nlabel = "{label}"\nprovider = "moonshot"\nbase_url = "{fake.base_url}"\n'
        f'api_key = "{key}"\n\n'
        for label, key in (("kimi a", KEY_A), ("kimi b", KEY_B))
    )


@pytest.fixture(scope="module")
def kimi() -> Iterator[FakeIflow]:
    with FakeIflow(mode="moonshot", api_keys=[KEY_A, KEY_B], models=MODELS) as server:
        yield server


@pytest.fixture(scope="module")
def kimi_gateway(tmp_path_factory: pytest.TempPathFactory, kimi: FakeIflow) -> Iterator[GatewayProcess]:
    data = tmp_path_factory.mktemp("kimi-data")
    config = data / "config.toml"
    config.write_text(config_text(kimi))
    env = {"IFLOW2API_CONFIG": str(config), "IFLOW2API_COOLDOWN_BASE": "30", "IFLOW2API_ERROR_COOLDOWN": "30"}
    process = GatewayProcess(tmp_path_factory.mktemp("kimi-iflow-home"), data, env)
    try:
        process.wait_for_health()
        yield process
    finally:
        process.stop()


@pytest.fixture
def gateway(kimi_gateway: GatewayProcess, kimi: FakeIflow) -> GatewayProcess:
    kimi.reset()
    kimi_gateway.reset_accounts()
    # reset_accounts lifts cooldowns and quarantines; an account out of credit is reset the same way.
    for account in accounts(kimi_gateway).values():
        if account["state"] == "out-of-credit":
            action = {"id": account["id"], "action": "reset"}
            httpx.post(kimi_gateway.url + "/api/accounts/action", json=action, timeout=5).raise_for_status()
    return kimi_gateway


# Typed as Any: the SDKs' overloads cannot see through requests built as plain dicts.
def sdk(gateway: GatewayProcess) -> Any:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)


def claude(gateway: GatewayProcess) -> Any:
    return anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)


def sent(fake: FakeIflow, index: int = -1) -> dict[str, Any]:
    request = fake.received[index]
    assert request.rejected is None, request.rejected
    assert request.body is not None
    return request.body


# --- the two-turn tool loop, OpenAI Chat Completions ---------------------------------------------

QUESTION = [{"role": "user", "content": "What is here?"}]


def ask_k26(gateway: GatewayProcess, messages: list[dict[str, Any]], effort: str, **extra: Any) -> Any:
    """kimi-k2.6 asked with the ``ls`` tool; the raw response, for its headers."""
    create = sdk(gateway).chat.completions.with_raw_response.create
    return create(model="kimi-k2.6", messages=messages, tools=[LS], reasoning_effort=effort, **extra)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_loop_thinking_gets_its_reasoning_back(
    gateway: GatewayProcess, kimi: FakeIflow, stream: bool
) -> None:
    kimi.enqueue(
        Completion(
            content="",
            reasoning="I should list the folder.",
            tool_calls=[call("call_k1")],
            finish_reason="tool_calls",
        ),
        Completion(content="Two files.", reasoning="Done."),
    )
    first = ask_k26(gateway, QUESTION, "high", stream=stream)
    assert first.headers[THINKING] == "enabled"
    assert sent(kimi)["thinking"] == {"type": "enabled"} and "reasoning_effort" not in sent(kimi)
    if stream:
        chunks = list(first.parse())
        reasoning = "".join(
            (c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices
        )
        assert reasoning == "I should list the folder."
    else:
        message = first.parse().choices[0].message
        assert (message.model_extra or {})["reasoning_content"] == "I should list the folder."
    # The client sends its history back without the reasoning, as OpenAI clients do.
    second = ask_k26(gateway, [*QUESTION, *answered("call_k1", "a.txt b.txt")], "high")
    assert second.parse().choices[0].message.content == "Two files."
    assert sent(kimi)["messages"][1]["reasoning_content"] == "I should list the folder."


def test_chat_tool_loop_with_unknown_reasoning_gets_the_filler(
    gateway: GatewayProcess, kimi: FakeIflow
) -> None:
    history = [*QUESTION, *answered("call_never_seen", "a.txt")]
    reply = sdk(gateway).chat.completions.create(model="kimi-k2.7-code", messages=history, tools=[LS])
    assert reply.choices[0].message.content
    assert sent(kimi)["messages"][1]["reasoning_content"] == ""


def test_chat_tool_loop_thinking_off(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    kimi.enqueue(
        Completion(
            content="", reasoning="never shown", tool_calls=[call("call_off")], finish_reason="tool_calls"
        ),
        Completion(content="Listed."),
    )
    first = ask_k26(gateway, QUESTION, "none", temperature=0.3)
    assert first.headers[THINKING] == "disabled"
    body = sent(kimi)
    assert body["thinking"] == {"type": "disabled"} and "temperature" not in body
    assert "reasoning_content" not in (first.parse().choices[0].message.model_extra or {})
    second = ask_k26(gateway, [*QUESTION, *answered("call_off", "a.txt")], "none")
    assert second.parse().choices[0].message.content == "Listed."
    assert "reasoning_content" not in sent(kimi)["messages"][1]


def test_chat_parameter_rules(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    strict_ls = {**LS, "function": {**LS["function"], "strict": True}}
    reply = sdk(gateway).chat.completions.create(
        model="kimi-k2.7-code",
        messages=[{"role": "user", "content": "list"}],
        tools=[strict_ls],
        tool_choice="required",
        max_tokens=300,
        top_p=0.5,
    )
    assert reply.choices[0].message.content
    body = sent(kimi)
    assert body["tool_choice"] == "auto" and body["max_completion_tokens"] == 300
    assert "strict" not in body["tools"][0]["function"] and "top_p" not in body and "max_tokens" not in body


def test_stream_usage_inside_choices_reaches_the_client_and_the_records(
    gateway: GatewayProcess, kimi: FakeIflow
) -> None:
    usage = dict(
        prompt_tokens=40, completion_tokens=6, total_tokens=46, prompt_tokens_details={"cached_tokens": 32}
    )
    kimi.enqueue(Completion(content="cached", usage=usage))
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="kimi-k3",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage_chunks = [c.usage for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].prompt_tokens == 40
    details = usage_chunks[0].prompt_tokens_details
    assert details is not None and details.cached_tokens == 32
    rows = usage_rows(gateway, 1)
    assert rows[0]["prompt_tokens"] == 40 and rows[0]["estimated"] is False


def usage_rows(gateway: GatewayProcess, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        rows: list[dict[str, Any]] = httpx.get(gateway.url + "/api/usage?days=1", timeout=5).json()["recent"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# --- Anthropic Messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_claude_codes_aux_request_with_thinking_disabled_is_clamped(
    gateway: GatewayProcess, kimi: FakeIflow, stream: bool
) -> None:
    kimi.enqueue(Completion(content="A short title", reasoning="Title it."))
    client = claude(gateway)
    request: dict[str, Any] = {
        "model": "kimi-k2.7-code",
        "max_tokens": 512,
        "thinking": {"type": "disabled"},
        "extra_body": {"temperature": 0},
        "messages": [{"role": "user", "content": "Title this chat"}],
    }
    raw = client.messages.with_raw_response.create(**request, stream=stream)
    header = raw.headers[THINKING]
    if stream:
        events = list(raw.parse())
        deltas = [e.delta for e in events if e.type == "content_block_delta"]
        assert "".join(d.text for d in deltas if d.type == "text_delta") == "A short title"
    else:
        assert [b.type for b in raw.parse().content] == ["thinking", "text"]
    assert header == "enabled"
    body = sent(kimi)
    assert "thinking" not in body and "temperature" not in body and body["max_completion_tokens"] == 512


def test_k3_off_is_the_lowest_effort(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    raw = claude(gateway).messages.with_raw_response.create(
        model="kimi-k3",
        max_tokens=64,
        thinking={"type": "disabled"},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert raw.headers[THINKING] == "reasoning_effort=low"
    assert sent(kimi)["reasoning_effort"] == "low" and "thinking" not in sent(kimi)


def test_anthropic_tool_loop_thinking_on(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    kimi.enqueue(
        Completion(
            content="", reasoning="Listing first.", tool_calls=[call("call_a1")], finish_reason="tool_calls"
        ),
        Completion(content="Two files.", reasoning="Enough."),
    )
    client = claude(gateway)
    question = {"role": "user", "content": "What is here?"}
    first = client.messages.create(
        model="kimi-k2.6",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[ANTHROPIC_LS],
        messages=[question],
    )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert sent(kimi)["thinking"] == {"type": "enabled"}
    # The history goes back as Claude Code sends it: the assistant turn as it came, thinking included.
    history = [
        question,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_a1", "content": "a.txt b.txt"}],
        },
    ]
    second = client.messages.create(
        model="kimi-k2.6",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[ANTHROPIC_LS],
        messages=history,
    )
    assert [b.type for b in second.content] == ["thinking", "text"]
    turn = sent(kimi)["messages"][1]
    assert turn["tool_calls"][0]["id"] == "call_a1" and turn["reasoning_content"] == "Listing first."


def test_anthropic_tool_loop_thinking_off(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    kimi.enqueue(
        Completion(content="", tool_calls=[call("call_a2")], finish_reason="tool_calls"),
        Completion(content="Done."),
    )
    client = claude(gateway)
    question = {"role": "user", "content": "What is here?"}
    kwargs: dict[str, Any] = {
        "model": "kimi-k2.6",
        "max_tokens": 256,
        "thinking": {"type": "disabled"},
        "tools": [ANTHROPIC_LS],
    }
    first = client.messages.create(messages=[question], **kwargs)
    assert [b.type for b in first.content] == ["tool_use"]
    history = [
        question,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_a2", "content": "a.txt"}]},
    ]
    second = client.messages.create(messages=history, **kwargs)
    assert second.content[0].type == "text"
    body = sent(kimi)
    assert body["thinking"] == {"type": "disabled"} and "reasoning_content" not in body["messages"][1]


# --- Responses -------------------------------------------------------------------------------------


def test_responses_effort_and_reasoning_item(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    kimi.enqueue(Completion(content="Hello.", reasoning="Greet back."))
    raw = sdk(gateway).responses.with_raw_response.create(
        model="kimi-k3", input="hi", reasoning={"effort": "medium"}, max_output_tokens=100
    )
    assert raw.headers[THINKING] == "reasoning_effort=high"
    response = raw.parse()
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == "Hello."
    body = sent(kimi)
    assert body["reasoning_effort"] == "high" and body["max_completion_tokens"] == 100


@pytest.mark.parametrize("keep_reasoning", [True, False])
def test_responses_tool_loop_thinking(gateway: GatewayProcess, kimi: FakeIflow, keep_reasoning: bool) -> None:
    kimi.enqueue(
        Completion(
            content="", reasoning="List it.", tool_calls=[call("call_r1")], finish_reason="tool_calls"
        ),
        Completion(content="One file."),
    )
    client = sdk(gateway)
    tools = [{"type": "function", "name": "ls", "parameters": {"type": "object", "properties": {}}}]
    question = {"role": "user", "content": "What is here?"}
    first = client.responses.create(model="kimi-k2.7-code", input=[question], tools=tools)
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    # Codex sends the reasoning item back; a client that drops it relies on the reasoning store.
    earlier = [item.model_dump(exclude_none=True) for item in first.output]
    if not keep_reasoning:
        earlier = [item for item in earlier if item["type"] != "reasoning"]
    answer = {"type": "function_call_output", "call_id": "call_r1", "output": "a.txt"}
    second = client.responses.create(model="kimi-k2.7-code", input=[question, *earlier, answer], tools=tools)
    assert second.output_text == "One file."
    assert sent(kimi)["messages"][1]["reasoning_content"] == "List it."


# --- errors and the pool ---------------------------------------------------------------------------


def accounts(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    return {account["label"]: account for account in listing["accounts"]}


def test_quota_spent_rests_the_account_out_of_credit_and_another_serves(
    gateway: GatewayProcess, kimi: FakeIflow
) -> None:
    kimi.enqueue_for(KEY_A, fake_kimi.QUOTA_SPENT)
    client = sdk(gateway)
    for _ in range(3):
        reply = client.chat.completions.create(
            model="kimi-k2.6", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        if any(r.headers["authorization"] == f"Bearer {KEY_A}" for r in kimi.received):
            break
    assert kimi.received[-1].headers["authorization"] == f"Bearer {KEY_B}"
    state = accounts(gateway)["kimi a"]
    assert state["state"] == "out-of-credit" and "insufficient balance" in state["reason"]
    assert accounts(gateway)["kimi b"]["state"] == "ok"


def test_a_refused_request_is_the_clients_error(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    kimi.enqueue(
        fake_kimi.error(400, "invalid_request_error", "Invalid request: Input token length too long")
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(
            model="kimi-k2.6", messages=[{"role": "user", "content": "long"}]
        )
    assert caught.value.code == "context_length_exceeded"
    assert len(kimi.received) == 1  # not tried on the other account
    assert {a["state"] for a in accounts(gateway).values()} == {"ok"}


def test_rate_limit_rests_one_account_for_what_kimi_said(gateway: GatewayProcess, kimi: FakeIflow) -> None:
    kimi.enqueue_for(KEY_A, fake_kimi.rate_limited(retry_after=120))
    kimi.enqueue_for(KEY_B, fake_kimi.rate_limited(retry_after=120))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway).chat.completions.create(model="kimi-k2.6", messages=[{"role": "user", "content": "hi"}])
    assert 100 <= int(caught.value.response.headers["retry-after"]) <= 120
    assert {a["state"] for a in accounts(gateway).values()} == {"cooling"}


def test_models_are_the_accounts(gateway: GatewayProcess) -> None:
    listing = httpx.get(gateway.url + "/v1/models", timeout=5).json()
    assert sorted(m["id"] for m in listing["data"]) == sorted(MODELS)
