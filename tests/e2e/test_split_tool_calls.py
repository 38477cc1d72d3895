"""A tool call whose id and name arrive in different chunks reaches Claude clients whole (issue 9)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import FakeIflow, Stream

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-split",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "glm-4.7",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def call(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


@pytest.fixture
def claude(gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as client:
        yield client


def test_id_first_and_name_next_reaches_the_sdk_as_one_named_call(
    claude: anthropic.Anthropic, fake: FakeIflow
) -> None:
    fake.enqueue(
        Stream(
            chunks=[
                chunk({"role": "assistant", "content": "Let me look."}),
                chunk(call(0, id="call_w1", type="function", function={"arguments": ""})),
                chunk(call(0, function={"name": "get_weather"})),
                chunk(call(0, function={"arguments": '{"city":'})),
                chunk(call(0, function={"arguments": ' "Paris"}'})),
                chunk({}, "tool_calls"),
            ]
        )
    )
    request: Any = {
        "model": "glm-4.7",
        "max_tokens": 100,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    with claude.messages.stream(**request) as stream:
        starts = [
            event.content_block
            for event in stream
            if event.type == "content_block_start" and event.content_block.type == "tool_use"
        ]
        final = stream.get_final_message()
    assert [(block.id, block.name) for block in starts] == [("call_w1", "get_weather")]
    tool_uses = [block for block in final.content if block.type == "tool_use"]
    assert [(block.id, block.name, block.input) for block in tool_uses] == [
        ("call_w1", "get_weather", {"city": "Paris"})
    ]
    assert final.stop_reason == "tool_use"
