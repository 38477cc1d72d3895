"""The stream relay's hot path: what it parses, and what it keeps, per chunk.

OpenAI-compatible upstreams asked for usage (the gateway always asks) put ``"usage":null`` on
every chunk. Those chunks must flow as bytes, like any other, and a stream of any length must
leave behind no more than the text the model wrote (for an estimate, until usage arrives).
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iflow2api.dialects.openai_chat.stream import OutputText, StreamRelay
from iflow2api.errors import GatewayError
from tests.unit.stream_output import chunks_output

HEAD = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'


def never(payload: object) -> GatewayError | None:
    return None


def chunk(text: str, usage: bytes = b',"usage":null') -> bytes:
    delta = orjson.dumps({"content": text})
    return HEAD + b'"choices":[{"index":0,"delta":' + delta + b',"finish_reason":null}]' + usage + b"}"


def payload(frame: bytes) -> bytes:
    return frame.removeprefix(b"data: ").removesuffix(b"\n\n")


class CountingLoads:
    def __init__(self) -> None:
        self.calls = 0
        self._loads = orjson.loads

    def __call__(self, data: Any) -> Any:
        self.calls += 1
        return self._loads(data)


NULL_USAGE_SHAPES = {
    "compact": chunk("x"),
    "spaced": chunk("x", b', "usage": null'),
    "first": b'{"usage":null,' + chunk("x", b"")[1:],
}


@pytest.mark.parametrize("include_usage", [True, False], ids=["asked", "not-asked"])
@pytest.mark.parametrize("data", NULL_USAGE_SHAPES.values(), ids=NULL_USAGE_SHAPES.keys())
def test_null_usage_chunks_are_forwarded_without_parsing(
    monkeypatch: pytest.MonkeyPatch, include_usage: bool, data: bytes
) -> None:
    relay = StreamRelay(include_usage=include_usage, classify=never)
    relay.feed(chunk("Hi"))  # content: from here on chunks flow
    loads = CountingLoads()
    monkeypatch.setattr(orjson, "loads", loads)
    frames = [payload(f) for _ in range(100) for f in relay.feed(data)]
    assert loads.calls == 0
    assert len(frames) == 100
    if include_usage:
        # Already OpenAI's shape (usage null on every chunk but the last): as they came.
        assert set(frames) == {data}
    else:
        # The field appears only when a client asks for it (ChatCompletionStreamResponse.usage).
        (sent,) = set(frames)
        expected = json.loads(data)
        del expected["usage"]
        assert json.loads(sent) == expected and b"usage" not in sent


def test_a_null_usage_before_real_usage_does_not_hide_it() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    relay.feed(chunk("Hi"))
    relay.feed(chunk("!"))
    usage = b'{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":3}}'
    assert relay.feed(usage) == []
    assert relay.usage == {"total_tokens": 3}
    last, _ = relay.finish()
    assert json.loads(payload(last))["usage"] == {"total_tokens": 3}


@pytest.mark.parametrize("include_usage", [True, False], ids=["asked", "not-asked"])
def test_a_long_stream_keeps_only_the_text_it_carried(include_usage: bool) -> None:
    chunks = [chunk(f"tok{i} ") for i in range(20_000)]
    written = "".join(f"tok{i} " for i in range(20_000))
    relay = StreamRelay(include_usage=include_usage, classify=never)
    tracemalloc.start()
    try:
        for data in chunks:
            relay.feed(data)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The text is what an estimate needs; per-chunk bytes or dicts would be tens of megabytes.
    assert kept < 2 * len(written) + 64 * 1024
    for name in StreamRelay.__slots__:
        value = getattr(relay, name)
        assert not (isinstance(value, list) and len(value) > 1), name
    assert relay.output() == written


def test_the_text_is_dropped_once_usage_arrives() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    relay.feed(chunk("Hello"))
    finish = HEAD + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}}'
    relay.feed(finish)
    relay.feed(chunk(" more"))
    assert relay.output() == ""


DELTAS = st.fixed_dictionaries(
    {},
    optional={
        "role": st.just("assistant"),
        "content": st.text(),
        "reasoning_content": st.text(),
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"index": st.integers(0, 3)},
                optional={
                    "id": st.text(),
                    "function": st.fixed_dictionaries(
                        {}, optional={"name": st.text(), "arguments": st.text()}
                    ),
                },
            ),
            max_size=2,
        ),
    },
)


@given(st.lists(DELTAS, max_size=5), st.sampled_from([0, orjson.OPT_INDENT_2]))
def test_the_running_text_is_what_the_parsed_chunks_say(deltas: list[dict[str, Any]], option: int) -> None:
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": delta}]} for delta in deltas]
    output = OutputText()
    for parsed in chunks:
        output.feed(orjson.dumps(parsed, option=option))
    # The same characters, in the order the fields came in each chunk.
    assert sorted(output.text()) == sorted(chunks_output(chunks))
