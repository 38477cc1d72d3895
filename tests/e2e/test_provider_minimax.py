"""Two MiniMax accounts behind a gateway, through the real ``openai`` and ``anthropic`` SDKs.

The fake plays MiniMax (``tests/fake_iflow/hosts/minimax.py``): reasoning in ``reasoning_details``
when asked ``reasoning_split``, else as ``<think>`` in the content cut across chunks; errors in its
shapes, inside HTTP 200s too. The client must only ever see reasoning as reasoning, and MiniMax must
get each earlier turn's reasoning back exactly as it wrote it.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.provider_gateway import (
    CALLS,
    THINKING,
    anthropic_tool_loop,
    fake_fixture,
    fresh_fixture,
    gateway_fixture,
    openai_client,
    sent,
    served_by,
    states,
    streamed,
)
from tests.fake_iflow import Completion, FakeIflow, RawJson, Stream
from tests.fake_iflow.hosts import minimax as host
from tests.fake_iflow.replies import completion_chunks

KEY_A = "sk-api-" + "a" * 32
KEY_B = "sk-api-" + "b" * 32
MODELS = ["MiniMax-M3", "MiniMax-M2.7"]
KEYS = {"a": KEY_A, "b": KEY_B}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    }
]


fake_host = fake_fixture("minimax", KEYS, MODELS)
split_gateway = gateway_fixture("minimax", KEYS)
tag_gateway = gateway_fixture("minimax", KEYS, "minimax.reasoning_split=false")
fake, gateway, tags = fresh_fixture("fake_host"), fresh_fixture("split_gateway"), fresh_fixture("tag_gateway")


def test_whole_answer_reasoning_split(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Four.", reasoning="2+2 is 4."))
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="MiniMax-M3",
        messages=[{"role": "user", "content": "2+2?"}],
        reasoning_effort="high",
        max_tokens=100,
    )
    reply = raw.parse()
    message = reply.choices[0].message
    assert message.content == "Four."
    assert getattr(message, "reasoning_content", None) == "2+2 is 4."
    assert raw.headers[THINKING] == "adaptive"
    body = sent(fake)
    assert body["thinking"] == {"type": "adaptive"} and body["reasoning_split"] is True
    assert "reasoning_effort" not in body and "max_tokens" not in body
    assert body["max_completion_tokens"] == 100


@pytest.mark.parametrize("model", MODELS)
def test_streamed_reasoning_split(gateway: GatewayProcess, fake: FakeIflow, model: str) -> None:
    fake.enqueue(Completion(content="The answer is four.", reasoning="Adding two and two."))
    chunks = list(
        openai_client(gateway).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "2+2?"}], stream=True
        )
    )
    assert not any("reasoning_details" in (c.choices[0].delta.model_extra or {}) for c in chunks if c.choices)
    reasoning, content = streamed(chunks)
    # M2.7 sends reasoning_details only; M3 reasoning_content too: relayed once.
    assert (reasoning, content) == ("Adding two and two.", "The answer is four.")


def test_think_tags_never_reach_the_client(tags: GatewayProcess, fake: FakeIflow) -> None:
    client = openai_client(tags)
    fake.enqueue(
        Completion(content="Four.", reasoning="2+2 is 4."),
        Completion(content="Still four.", reasoning="Again."),
    )
    whole = client.chat.completions.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "2+2?"}]
    )
    assert whole.choices[0].message.content == "Four."
    assert getattr(whole.choices[0].message, "reasoning_content", None) == "\n2+2 is 4.\n"
    assert "reasoning_split" not in sent(fake)
    chunks = list(
        client.chat.completions.create(
            model="MiniMax-M2.7", messages=[{"role": "user", "content": "2+2?"}], stream=True
        )
    )
    reasoning, content = streamed(chunks)
    assert (reasoning, content) == ("\nAgain.\n", "Still four.")


def test_openai_tool_loop_gets_reasoning_details_back_verbatim(
    gateway: GatewayProcess, fake: FakeIflow
) -> None:
    client = openai_client(gateway)
    fake.enqueue(
        Completion(content="", reasoning="Look it up.", tool_calls=CALLS, finish_reason="tool_calls")
    )
    first = list(
        client.chat.completions.create(
            model="MiniMax-M3", messages=[{"role": "user", "content": "Oslo?"}], tools=TOOLS, stream=True
        )
    )
    calls = [call for c in first if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert calls[0].id == "call_1"
    assert "strict" not in sent(fake)["tools"][0]["function"]
    fake.enqueue(Completion(content="5C in Oslo."))
    # An OpenAI client sends the turn back without reasoning_content: the gateway's store has it.
    history: list[Any] = [
        {"role": "user", "content": "Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": CALLS},
        {"role": "tool", "tool_call_id": "call_1", "content": "5C"},
    ]
    second = client.chat.completions.create(model="MiniMax-M3", messages=history, tools=TOOLS)
    assert second.choices[0].message.content == "5C in Oslo."
    assistant = next(m for m in sent(fake)["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_details"] == [{**host.DETAIL, "text": "Look it up."}]
    assert "reasoning_content" not in assistant
    assert host.replayed(sent(fake)) == ["Look it up."]


def test_anthropic_tool_loop_gets_think_text_back_verbatim(tags: GatewayProcess, fake: FakeIflow) -> None:
    first, header, second = anthropic_tool_loop(
        tags, fake, "MiniMax-M3", {"type": "enabled", "budget_tokens": 2048}
    )
    assert header == "adaptive"
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    assert first.content[0].thinking == "\nNeed Oslo.\n"  # type: ignore[union-attr]
    assert second.content[-1].type == "text" and second.content[-1].text == "5C."
    assert sent(fake)["thinking"] == {"type": "adaptive"}  # "enabled" is refused with 2013
    assert host.replayed(sent(fake)) == ["<think>\nNeed Oslo.\n</think>"]


def test_anthropic_tool_loop_with_thinking_off(gateway: GatewayProcess, fake: FakeIflow) -> None:
    first, header, second = anthropic_tool_loop(
        gateway, fake, "MiniMax-M3", {"type": "disabled"}, reasoning="", call_id="call_off"
    )
    assert header == "disabled"
    assert [block.type for block in first.content] == ["tool_use"]
    assert second.content[-1].type == "text" and second.content[-1].text == "5C."
    assert sent(fake)["thinking"] == {"type": "disabled"}
    assert host.replayed(sent(fake)) == [None]  # nothing to give back, and MiniMax takes that


def test_responses_clients_get_reasoning_items(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Four.", reasoning="2+2=4"))
    response = openai_client(gateway).responses.create(
        model="MiniMax-M3", input="2+2?", reasoning={"effort": "low"}
    )
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == "Four."
    assert "<think>" not in str(response.output)


def test_off_on_a_model_that_always_thinks_is_clamped(gateway: GatewayProcess, fake: FakeIflow) -> None:
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
    )
    assert raw.headers[THINKING] == "always on (the M2 family cannot turn thinking off)"
    assert "thinking" not in sent(fake)
    off = openai_client(gateway).chat.completions.with_raw_response.create(
        model="MiniMax-M3", messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
    )
    assert off.headers[THINKING] == "disabled" and sent(fake)["thinking"] == {"type": "disabled"}


def test_an_error_inside_a_200_fails_over(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue_for(KEY_A, RawJson(host.base_resp_error(1002, "rate limit exceeded")))
    fake.enqueue_for(KEY_B, Completion(content="from b"))
    reply = openai_client(gateway).chat.completions.create(
        model="MiniMax-M3", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "from b"
    assert served_by(fake, KEYS) == ["a", "b"]
    assert states(gateway)["a"] == "cooling"


@pytest.mark.parametrize("choices", [None, []])
def test_an_error_chunk_before_content_fails_over(
    gateway: GatewayProcess, fake: FakeIflow, choices: list[Any] | None
) -> None:
    fake.enqueue_for(KEY_A, Stream([host.base_resp_error(1008, "insufficient balance", choices)]))
    fake.enqueue_for(KEY_B, Completion(content="from b"))
    chunks = list(
        openai_client(gateway).chat.completions.create(
            model="MiniMax-M3", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from b"
    assert served_by(fake, KEYS) == ["a", "b"]
    assert states(gateway)["a"] == "out-of-credit"


def test_spent_balance_is_out_of_credit(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue_for(KEY_A, host.http_error(402, "insufficient_balance_error", "insufficient balance (1008)"))
    fake.enqueue_for(KEY_B, Completion(content="from b"))
    reply = openai_client(gateway).chat.completions.create(
        model="MiniMax-M3", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "from b"
    assert states(gateway)["a"] == "out-of-credit"


def test_a_stream_without_done_still_ends_cleanly(gateway: GatewayProcess, fake: FakeIflow) -> None:
    request = {"model": "MiniMax-M3", "reasoning_split": True, "stream": True}
    chunks = completion_chunks(
        Completion(content="All of it.", reasoning="Hm."), "MiniMax-M3", include_usage=True
    )
    fake.enqueue(Stream(host.HOST().shape_chunks(chunks, request), done=False))  # type: ignore[arg-type]
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "MiniMax-M3", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=20,
    )
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    assert '"reasoning_content":"Hm."' in response.text and "reasoning_details" not in response.text
    fake.enqueue(Stream(host.HOST().shape_chunks(chunks, request), done=False))  # type: ignore[arg-type]
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20)
    with claude.messages.stream(
        model="MiniMax-M3", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]


def test_the_fake_refuses_what_minimax_refuses() -> None:
    judge = host.HOST().judge
    base = {"model": "MiniMax-M3", "messages": [{"role": "user", "content": "x"}]}
    headers = {"authorization": f"Bearer {KEY_A}"}
    enabled = judge(headers, {**base, "thinking": {"type": "enabled"}}, api_keys=[KEY_A], models=MODELS)
    assert enabled is not None and enabled.status == 400 and "(2013)" in enabled.body["error"]["message"]
    assert judge(headers, {**base, "max_tokens": 5}, api_keys=[KEY_A], models=MODELS) is not None
    assert judge({}, base, api_keys=[KEY_A], models=MODELS) is not None
    assert judge(headers, base, api_keys=[KEY_A], models=MODELS) is None
