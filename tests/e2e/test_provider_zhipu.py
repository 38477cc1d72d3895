"""Two GLM accounts (``provider = "zhipu"`` in the config file) behind one gateway, against the fake
Zhipu: each client's thinking intent becomes GLM's own switch (Claude Code's ``thinking: disabled``
on GLM-5.3 clamped, not refused), reasoning comes out in each dialect and goes back in a tool loop,
streamed usage arrives unasked, and an account in arrears (1113) rests as out of credit while the
other serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.provider_gateway import accepted
from tests.fake_iflow import Completion, FakeIflow, HttpError, RawJson, Stream
from tests.fake_iflow.hosts.zhipu import DEFAULT_REASONING, error_body

KEY_A = "zk-" + "a" * 32
KEY_B = "zk-" + "b" * 32
LABELS = {KEY_A: "glm one", KEY_B: "glm two"}
MODELS = ["glm-5.3", "glm-5.2", "glm-4.7"]
LS = {"id": "call_ls", "type": "function", "function": {"name": "ls", "arguments": '{"path": "."}'}}
CHAT_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "ls",
            "description": "List files",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            "strict": True,
        },
    }
]
CLAUDE_TOOLS: list[Any] = [
    {
        "name": "ls",
        "description": "List files",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def glm() -> Iterator[FakeIflow]:
    with FakeIflow(mode="zhipu", api_keys=[KEY_A, KEY_B], models=MODELS) as server:
        yield server


@pytest.fixture
def gateway(start_gateway: Any, glm: FakeIflow, tmp_path: Path) -> GatewayProcess:
    """A gateway of the test's own: the accounts' states (out of credit...) do not leak."""
    glm.reset()
    config = tmp_path / "config.toml"
    config.write_text(
        "".join(
            f'[[accounts]]\nlabel = "{label}"\nprovider = "zhipu"\nbase_url = "{glm.base_url}"\n'
            f'api_key = "{key}"\n\n'
            for key, label in LABELS.items()
        )
    )
    gateway: GatewayProcess = start_gateway(None, {"IFLOW2API_CONFIG": str(config)})
    return gateway


@pytest.fixture
def sdk(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)


@pytest.fixture
def claude(gateway: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)


def accounts(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    return {account["label"]: account for account in listing["accounts"]}


def last_body(glm: FakeIflow) -> dict[str, Any]:
    received = glm.received[-1]
    assert received.rejected is None, received.rejected
    assert received.body is not None
    return received.body


def test_openai_tool_loop_thinking_on_streamed_then_whole(sdk: openai.OpenAI, glm: FakeIflow) -> None:
    glm.enqueue(Completion(content="", reasoning="List first.", tool_calls=[LS], finish_reason="tool_calls"))
    question: Any = {"role": "user", "content": "What is here?"}
    raw = sdk.chat.completions.with_raw_response.create(
        model="glm-4.7",
        messages=[question],
        tools=CHAT_TOOLS,
        tool_choice="required",
        reasoning_effort="high",
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-iflow2api-thinking"] == "enabled"
    chunks = list(raw.parse())
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert reasoning == "List first."
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert calls[0].id == "call_ls" and calls[0].function is not None and calls[0].function.name == "ls"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17  # GLM's, unasked
    sent = last_body(glm)
    assert sent["thinking"] == {"type": "enabled"} and "reasoning_effort" not in sent
    assert "stream_options" not in sent and sent["tool_choice"] == "auto"
    assert "strict" not in sent["tools"][0]["function"]

    # Turn two, whole: the client drops the reasoning; the gateway sends it back.
    glm.enqueue(Completion(content="a.txt", reasoning="Done."))
    history: Any = [
        question,
        {"role": "assistant", "content": "", "tool_calls": [LS]},
        {"role": "tool", "tool_call_id": "call_ls", "content": "a.txt"},
    ]
    reply = sdk.chat.completions.create(
        model="glm-4.7", messages=history, tools=CHAT_TOOLS, reasoning_effort="high"
    )
    assert reply.choices[0].message.content == "a.txt"
    assert getattr(reply.choices[0].message, "reasoning_content", None) == "Done."
    assistant = next(m for m in last_body(glm)["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "List first."


def test_openai_thinking_off(sdk: openai.OpenAI, glm: FakeIflow) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="glm-4.7", messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
    )
    assert raw.headers["x-iflow2api-thinking"] == "disabled"
    reply = raw.parse()
    assert getattr(reply.choices[0].message, "reasoning_content", None) is None
    assert last_body(glm)["thinking"] == {"type": "disabled"}


def test_openai_tool_loop_thinking_off_on_glm_4_7(sdk: openai.OpenAI, glm: FakeIflow) -> None:
    call = {**LS, "id": "call_off"}
    glm.enqueue(Completion(content="", tool_calls=[call], finish_reason="tool_calls"))
    question: Any = {"role": "user", "content": "What is here?"}
    raw = sdk.chat.completions.with_raw_response.create(
        model="glm-4.7", messages=[question], tools=CHAT_TOOLS, reasoning_effort="none", stream=True
    )
    assert raw.headers["x-iflow2api-thinking"] == "disabled"
    chunks = list(raw.parse())
    assert all(getattr(c.choices[0].delta, "reasoning_content", None) is None for c in chunks if c.choices)
    ids = [tool.id for c in chunks if c.choices for tool in c.choices[0].delta.tool_calls or () if tool.id]
    assert ids == ["call_off"]

    glm.enqueue(Completion(content="a.txt"))
    history: Any = [
        question,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_off", "content": "a.txt"},
    ]
    second = sdk.chat.completions.with_raw_response.create(
        model="glm-4.7", messages=history, tools=CHAT_TOOLS, reasoning_effort="none"
    )
    assert second.headers["x-iflow2api-thinking"] == "disabled"
    assert second.parse().choices[0].message.content == "a.txt"
    turns = accepted(glm)
    assert [body["thinking"] for body in turns] == [{"type": "disabled"}] * 2
    assert all("reasoning_effort" not in body for body in turns)
    assistant = next(m for m in last_body(glm)["messages"] if m["role"] == "assistant")
    assert not assistant.get("reasoning_content")  # nothing was thought, so nothing goes back


def test_claude_code_thinking_disabled_on_glm_5_3_is_clamped(
    claude: anthropic.Anthropic, glm: FakeIflow
) -> None:
    glm.enqueue(Completion(content="", reasoning="Look around.", tool_calls=[LS], finish_reason="tool_calls"))
    question: Any = {"role": "user", "content": "What is here?"}
    with claude.messages.stream(
        model="glm-5.3",
        max_tokens=1000,
        tools=CLAUDE_TOOLS,
        thinking={"type": "disabled"},
        messages=[question],
    ) as stream:
        assert (
            stream.response.headers["x-iflow2api-thinking"] == "enabled; reasoning_effort=low (always thinks)"
        )
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    sent = last_body(glm)
    assert sent["thinking"] == {"type": "enabled"} and sent["reasoning_effort"] == "low"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert [(use.id, use.input) for use in uses] == [("call_ls", {"path": "."})]

    glm.enqueue(Completion(content="Only a.txt."))
    history: Any = [
        question,
        {"role": "assistant", "content": [use.model_dump() for use in uses]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_ls", "content": "a.txt"}]},
    ]
    second = claude.messages.create(
        model="glm-5.3", max_tokens=1000, tools=CLAUDE_TOOLS, thinking={"type": "disabled"}, messages=history
    )
    assert [block.text for block in second.content if block.type == "text"] == ["Only a.txt."]
    assert all(r.rejected is None for r in glm.received)  # no 1210 on the way
    assistant = next(m for m in last_body(glm)["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "Look around."


def test_claude_thinking_with_a_budget_on_glm_5_3(claude: anthropic.Anthropic, glm: FakeIflow) -> None:
    glm.enqueue(Completion(content="4", reasoning="2+2."))
    raw = claude.messages.with_raw_response.create(
        model="glm-5.3",
        max_tokens=20_000,
        thinking={"type": "enabled", "budget_tokens": 10_000},
        messages=[{"role": "user", "content": "2+2?"}],
    )
    assert raw.headers["x-iflow2api-thinking"] == "enabled; reasoning_effort=high"
    message = raw.parse()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "2+2."  # type: ignore[union-attr]
    assert last_body(glm)["reasoning_effort"] == "high"


def test_responses_reasoning_on_glm_5_2(sdk: openai.OpenAI, glm: FakeIflow) -> None:
    response = sdk.responses.create(model="glm-5.2", input="hi", reasoning={"effort": "low"})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert DEFAULT_REASONING in str(response.output[0].model_dump())
    sent = last_body(glm)
    assert sent["thinking"] == {"type": "enabled"} and sent["reasoning_effort"] == "high"


def test_arrears_put_an_account_out_of_credit_and_the_other_serves(
    gateway: GatewayProcess, sdk: openai.OpenAI, glm: FakeIflow
) -> None:
    arrears = error_body("1113", "Your account is in arrears, please recharge and try again")
    glm.enqueue(HttpError(429, arrears), Completion(content="served"))
    reply = sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "served"
    served = [r.headers["authorization"].removeprefix("Bearer ") for r in glm.received]
    assert len(served) == 2 and served[0] != served[1]
    states = accounts(gateway)
    assert states[LABELS[served[0]]]["state"] == "out-of-credit"
    assert "arrears" in states[LABELS[served[0]]]["reason"]
    assert states[LABELS[served[1]]]["state"] == "ok"


def test_a_blocked_answer_is_the_clients_error(sdk: openai.OpenAI, glm: FakeIflow) -> None:
    blocked = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "glm-4.7",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "sensitive"}
        ],
    }
    glm.enqueue(RawJson(blocked))
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "content_filter"
    assert len(glm.received) == 1  # the client's fault: no other account is tried


def test_a_stream_blocked_before_any_text_is_the_clients_error(sdk: openai.OpenAI, glm: FakeIflow) -> None:
    glm.enqueue(Stream.of_text([], finish_reason="sensitive", model="glm-4.7"))
    with pytest.raises(openai.BadRequestError) as refused:
        list(
            sdk.chat.completions.create(
                model="glm-4.7", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    assert refused.value.code == "content_filter"
