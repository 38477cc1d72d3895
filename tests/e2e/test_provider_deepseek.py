"""A DeepSeek account (``provider = "deepseek"``) behind the gateway, against the fake DeepSeek,
through the real openai and anthropic SDKs: two-turn tool loops with thinking on and off, where the
client drops the reasoning and the gateway gives it back (the fake refuses the history otherwise),
streamed and not; the ``x-iflow2api-thinking`` header; and a spent balance (402) that puts an
account out of credit while the next one serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import DEFAULT_USAGE, Completion, FakeIflow, HttpError
from tests.fake_iflow.hosts.deepseek import DEFAULT_REASONING

KEY_A = "sk-" + "d" * 32
KEY_B = "sk-" + "f" * 32
MODEL = "deepseek-flash"
QUESTION: dict[str, Any] = {"role": "user", "content": "What is here?"}
CHAT_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "shell",
            "description": "Run a command",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
            "strict": True,
        },
    }
]
ANTHROPIC_TOOLS: list[Any] = [
    {
        "name": "shell",
        "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
    }
]


def call(call_id: str, cmd: str = "ls") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "shell", "arguments": json.dumps({"cmd": cmd})},
    }


def account(label: str, key: str, fake: FakeIflow) -> str:
    return (
        f'[[accounts]]\nlabel = "{label}"\nprovider = "deepseek"\n'
        f'base_url = "{fake.base_url}"\napi_key = "{key}"\n\n'
    )


def start(tmp: Path, config: str, **env: str) -> GatewayProcess:
    """A gateway whose accounts are ``config``'s ``[[accounts]]`` tables, used in their order."""
    (tmp / "config.toml").write_text(config)
    (tmp / "iflow").mkdir()
    env = {"IFLOW2API_CONFIG": str(tmp / "config.toml"), "IFLOW2API_STRATEGY": "fill-first", **env}
    gateway = GatewayProcess(tmp / "iflow", tmp / "data", env)
    gateway.wait_for_health()
    return gateway


@pytest.fixture(scope="module")
def deepseek() -> Iterator[FakeIflow]:
    with FakeIflow(mode="deepseek", api_keys=[KEY_A, KEY_B], models=[MODEL, "deepseek-v4-pro"]) as server:
        yield server


@pytest.fixture(scope="module")
def one_account(tmp_path_factory: pytest.TempPathFactory, deepseek: FakeIflow) -> Iterator[GatewayProcess]:
    gateway = start(tmp_path_factory.mktemp("deepseek"), account("DeepSeek", KEY_A, deepseek))
    yield gateway
    gateway.stop()


@pytest.fixture
def fake(deepseek: FakeIflow) -> FakeIflow:
    deepseek.reset()
    return deepseek


@pytest.fixture
def sdk(one_account: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=one_account.url + "/v1", api_key="x", max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture
def claude(one_account: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=one_account.url, api_key="x", max_retries=0, timeout=20) as client:
        yield client


def script_loop(fake: FakeIflow, call_id: str, reasoning: str | None, answer: str) -> None:
    """The host's two answers in a tool loop: a tool call (with ``reasoning``), then ``answer``."""
    fake.enqueue(
        Completion(content="", reasoning=reasoning, tool_calls=[call(call_id)], finish_reason="tool_calls"),
        Completion(content=answer),
    )


def chat_history(call_id: str, result: str) -> list[dict[str, Any]]:
    """A chat tool loop as an OpenAI client sends it back: the tool call without its reasoning."""
    return [
        QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call(call_id)]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def sent(fake: FakeIflow) -> dict[str, Any]:
    """The last request the fake DeepSeek accepted (a refused one fails the test with its reason)."""
    last = fake.received[-1]
    assert last.rejected is None, last.rejected
    assert last.body is not None
    return last.body


def assistant_turn(body: dict[str, Any]) -> dict[str, Any]:
    turn: dict[str, Any] = next(m for m in body["messages"] if m["role"] == "assistant")
    return turn


def chat_turn(
    sdk: openai.OpenAI, messages: list[Any], effort: str, stream: bool
) -> tuple[dict[str, Any], str]:
    """One chat request; the answer's message (reasoning_content included) and its thinking header."""
    create = sdk.chat.completions.with_raw_response.create
    raw = create(model=MODEL, messages=messages, tools=CHAT_TOOLS, reasoning_effort=effort, stream=stream)  # type: ignore[call-overload]
    header = raw.headers.get("x-iflow2api-thinking")
    if not stream:
        message: dict[str, Any] = raw.parse().choices[0].message.model_dump()
        return message, header
    reasoning, content = "", ""
    calls: dict[int, dict[str, str]] = {}
    for chunk in raw.parse():
        for choice in chunk.choices:
            delta = choice.delta.model_dump()
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
            for fragment in delta.get("tool_calls") or []:
                entry = calls.setdefault(fragment["index"], {"id": fragment["id"], "arguments": ""})
                entry["arguments"] += fragment["function"]["arguments"] or ""
    assembled = [{"id": c["id"], "arguments": c["arguments"]} for c in calls.values()]
    return {"reasoning_content": reasoning or None, "content": content, "tool_calls": assembled}, header


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_thinking_on(sdk: openai.OpenAI, fake: FakeIflow, stream: bool) -> None:
    script_loop(fake, "call_on", "List the folder first.", "Two files.")
    message, header = chat_turn(sdk, [QUESTION], "medium", stream)
    assert header == "enabled; reasoning_effort=high"
    assert message["reasoning_content"] == "List the folder first."
    assert [c["id"] for c in message["tool_calls"]] == ["call_on"]
    first = sent(fake)
    assert first["thinking"] == {"type": "enabled"} and first["reasoning_effort"] == "high"
    assert "strict" not in first["tools"][0]["function"]
    # Turn two: the client sends its tool call back without the reasoning, as OpenAI clients do.
    history = chat_history("call_on", "a.txt b.txt")
    answer, _ = chat_turn(sdk, history, "medium", stream)
    assert answer["content"] == "Two files."
    assert answer["reasoning_content"] == DEFAULT_REASONING  # the host always thinks when enabled
    assert assistant_turn(sent(fake))["reasoning_content"] == "List the folder first."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_thinking_off(sdk: openai.OpenAI, fake: FakeIflow, stream: bool) -> None:
    script_loop(fake, "call_off", None, "Done.")
    message, header = chat_turn(sdk, [QUESTION], "none", stream)
    assert header == "disabled"
    assert message.get("reasoning_content") is None
    first = sent(fake)
    assert first["thinking"] == {"type": "disabled"} and "reasoning_effort" not in first
    history = chat_history("call_off", "a.txt")
    answer, _ = chat_turn(sdk, history, "none", stream)
    assert answer["content"] == "Done."
    assert sent(fake)["thinking"] == {"type": "disabled"}


def test_a_history_the_gateway_never_saw_gets_an_empty_reasoning(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    """No reasoning is known for a tool call made elsewhere: DeepSeek takes an empty one, not none."""
    history = chat_history("call_elsewhere", "a.txt")
    reply = sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    body = sent(fake)
    assert "thinking" not in body  # no intent: the host's default
    assert assistant_turn(body)["reasoning_content"] == ""


def test_a_forced_tool_choice_turns_thinking_off(one_account: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="", tool_calls=[call("call_forced")], finish_reason="tool_calls"))
    response = httpx.post(
        one_account.url + "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "ls"}],
            "tools": CHAT_TOOLS,
            "tool_choice": "required",
            "max_completion_tokens": 64,
        },
        timeout=20,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-iflow2api-thinking"] == "disabled"
    body = sent(fake)
    assert body["tool_choice"] == "required" and body["max_tokens"] == 64


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_tool_loop_thinking_on(claude: anthropic.Anthropic, fake: FakeIflow, stream: bool) -> None:
    script_loop(fake, "call_an", "Run ls.", "Two files.")
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    first = anthropic_turn(claude, [QUESTION], thinking, stream)
    assert [block["type"] for block in first["content"]] == ["thinking", "tool_use"]
    assert first["content"][0]["thinking"] == "Run ls."
    body = sent(fake)
    assert body["thinking"] == {"type": "enabled"} and body["reasoning_effort"] == "low"
    # Turn two without the thinking block.
    history = [
        QUESTION,
        {"role": "assistant", "content": [first["content"][1]]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_an", "content": "a b"}]},
    ]
    second = anthropic_turn(claude, history, thinking, stream)
    assert second["content"][-1]["text"] == "Two files."
    assert assistant_turn(sent(fake))["reasoning_content"] == "Run ls."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_tool_loop_thinking_off(claude: anthropic.Anthropic, fake: FakeIflow, stream: bool) -> None:
    script_loop(fake, "call_ao", None, "Done.")
    first = anthropic_turn(claude, [QUESTION], {"type": "disabled"}, stream)
    assert [block["type"] for block in first["content"]] == ["tool_use"]
    assert sent(fake)["thinking"] == {"type": "disabled"}
    history = [
        QUESTION,
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_ao", "content": "a"}]},
    ]
    second = anthropic_turn(claude, history, {"type": "disabled"}, stream)
    assert [block["type"] for block in second["content"]] == ["text"]
    assert sent(fake)["thinking"] == {"type": "disabled"}


def anthropic_turn(
    claude: anthropic.Anthropic, messages: list[Any], thinking: Any, stream: bool
) -> dict[str, Any]:
    arguments: Any = {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": messages,
        "tools": ANTHROPIC_TOOLS,
        "thinking": thinking,
    }
    if not stream:
        message: dict[str, Any] = claude.messages.create(**arguments).model_dump()
        return message
    with claude.messages.stream(**arguments) as events:
        final: dict[str, Any] = events.get_final_message().model_dump()
    return final


def test_responses_tool_loop_restores_the_reasoning(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    script_loop(fake, "call_rs", "Look around.", "In /home.")
    tools: Any = [
        {"type": "function", "name": "shell", "parameters": CHAT_TOOLS[0]["function"]["parameters"]}
    ]
    first = sdk.responses.create(
        model=MODEL, input="Where am I?", tools=tools, reasoning={"effort": "high"}, store=False
    )
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    assert sent(fake)["reasoning_effort"] == "high"
    items: Any = [
        {"role": "user", "content": "Where am I?"},
        {"type": "function_call", "call_id": "call_rs", "name": "shell", "arguments": '{"cmd": "ls"}'},
        {"type": "function_call_output", "call_id": "call_rs", "output": "/home"},
    ]
    second = sdk.responses.create(
        model=MODEL, input=items, tools=tools, reasoning={"effort": "high"}, store=False
    )
    assert second.output_text == "In /home."
    assert assistant_turn(sent(fake))["reasoning_content"] == "Look around."


def test_usage_carries_deepseeks_cache_counts(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    usage = {**DEFAULT_USAGE, "prompt_tokens_details": {"cached_tokens": 64}}
    fake.enqueue(Completion(content="ok", usage=usage))
    reply = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 64


def test_a_spent_balance_puts_the_account_out_of_credit(tmp_path: Path, deepseek: FakeIflow) -> None:
    deepseek.reset()
    gateway = start(tmp_path, account("first", KEY_A, deepseek) + account("second", KEY_B, deepseek))
    try:
        body = {
            "error": {
                "message": "Insufficient Balance",
                "type": "unknown_error",
                "param": None,
                "code": "invalid_request_error",
            }
        }
        deepseek.enqueue_for(KEY_A, HttpError(402, body))
        deepseek.enqueue_for(KEY_B, Completion(content="from the second"))
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=20) as sdk:
            reply = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "from the second"
        keys = [r.headers["authorization"].removeprefix("Bearer ") for r in deepseek.received]
        assert keys == [KEY_A, KEY_B]
        listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]
        states = {a["label"]: (a["state"], a["reason"]) for a in listing}
        assert states["second"][0] == "ok"
        assert states["first"][0] == "out-of-credit"
        assert "Insufficient Balance" in states["first"][1]
    finally:
        gateway.stop()
