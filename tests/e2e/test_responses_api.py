"""OpenAI Responses (Codex) through the gateway, driven by the real openai SDK, against the fake iFlow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import BusinessError, Completion, FakeIflow

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "shell",
        "description": "Run a command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
        "strict": False,
    }
]


@pytest.fixture
def sdk(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20) as client:
        yield client


def test_text_with_reasoning_and_instructions(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Four.", reasoning="2+2=4"))
    response = sdk.responses.create(
        model="glm-4.7",
        instructions="Be brief.",
        input="2+2?",
        reasoning={"effort": "high"},
        max_output_tokens=300,
    )
    assert response.status == "completed"
    assert response.output_text == "Four."
    assert [item.type for item in response.output] == ["reasoning", "message"]
    sent = fake.received[-1].body
    assert sent is not None
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_new_tokens"] == 300
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}


def test_stream_events_in_order_with_sequence_numbers(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Hello world", reasoning="hm"))
    with sdk.responses.stream(model="glm-4.7", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert final.output_text == "Hello world"


def test_codex_style_tool_loop_replays_reasoning(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    """Codex (store: false) sends the items back itself, without usable reasoning."""
    calls = [
        {"id": "call_x", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "ls"}'}},
        {"id": "call_y", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "pwd"}'}},
    ]
    fake.enqueue(
        Completion(content="", reasoning="List, then locate.", tool_calls=calls, finish_reason="tool_calls")
    )
    first = sdk.responses.create(model="glm-4.7", input="Where am I?", tools=TOOLS, store=False)
    function_calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.call_id, c.arguments) for c in function_calls] == [
        ("call_x", '{"cmd": "ls"}'),
        ("call_y", '{"cmd": "pwd"}'),
    ]
    fake.enqueue(Completion(content="You are in /home."))
    items: list[Any] = [
        {"role": "user", "content": "Where am I?"},
        *(
            {"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments}
            for c in function_calls
        ),
        {"type": "function_call_output", "call_id": "call_x", "output": "a b"},
        {"type": "function_call_output", "call_id": "call_y", "output": "/home"},
    ]
    second = sdk.responses.create(model="glm-4.7", input=items, tools=TOOLS, store=False)
    assert second.output_text == "You are in /home."
    sent = fake.received[-1].body
    assert sent is not None
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_x", "call_y"]
    assert assistant["reasoning_content"] == "List, then locate."


def test_previous_response_id_continues_the_conversation(sdk: openai.OpenAI, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Hi, Ann."))
    first = sdk.responses.create(model="glm-4.7", input="I am Ann.")
    fake.enqueue(Completion(content="Ann."))
    sdk.responses.create(model="glm-4.7", input="Who am I?", previous_response_id=first.id)
    sent = fake.received[-1].body
    assert sent is not None
    assert [(m["role"], m.get("content")) for m in sent["messages"]] == [
        ("user", "I am Ann."),
        ("assistant", "Hi, Ann."),
        ("user", "Who am I?"),
    ]
    with pytest.raises(openai.BadRequestError) as gone:
        sdk.responses.create(model="glm-4.7", input="x", previous_response_id="resp_forgotten")
    assert gone.value.code == "previous_response_not_found"


def test_errors_in_openai_shape(sdk: openai.OpenAI, fake: FakeIflow, gateway: GatewayProcess) -> None:
    fake.enqueue(BusinessError(status="449", msg="busy"))
    with pytest.raises(openai.RateLimitError):
        sdk.responses.create(model="glm-4.7", input="x")
    gateway.reset_accounts()  # the only account rests after a 449; the next error needs it
    fake.enqueue(BusinessError(status="435", msg="Model not support"))
    with pytest.raises(openai.NotFoundError), sdk.responses.stream(model="nope", input="x") as stream:
        list(stream)
    with pytest.raises(openai.BadRequestError):
        bad_items: Any = [{"type": "no-such-item"}]
        sdk.responses.create(model="glm-4.7", input=bad_items)
