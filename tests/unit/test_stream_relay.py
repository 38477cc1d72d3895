from __future__ import annotations

import json

import pytest

from iflow2api.dialects.openai_chat.answer import completion_as_chunks, malformed
from iflow2api.dialects.openai_chat.stream import StreamRelay, carries_content
from iflow2api.errors import GatewayError, UpstreamConcurrencyLimited

CHUNK = b'{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}'
USAGE_ONLY = b'{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":3}}'
WITH_USAGE = b'{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"total_tokens":3}}'


def never(payload: object) -> GatewayError | None:
    return None


def decode(frames: list[bytes]) -> list[object]:
    return [json.loads(f[6:]) if f != b"data: [DONE]\n\n" else "[DONE]" for f in frames]


ROLE = b'{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}'
FINISH_WITH_USAGE = (
    b'{"id":"c","object":"chat.completion.chunk","model":"m","created":1,'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}}'
)


def data(frame: bytes) -> bytes:
    return frame.removeprefix(b"data: ").removesuffix(b"\n\n")


def test_chunks_pass_byte_for_byte_once_content_flows() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    assert relay.feed(CHUNK) == [b"data: " + CHUNK + b"\n\n"]
    assert relay.feed(CHUNK) == [b"data: " + CHUNK + b"\n\n"]


def test_with_usage_asked_for_every_chunk_has_it_as_null() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    (first,) = relay.feed(CHUNK)
    assert data(first) == CHUNK[:-1] + b',"usage":null}'
    assert json.loads(data(first))["usage"] is None


def test_usage_is_dropped_when_not_asked_for() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    assert relay.feed(USAGE_ONLY) == []
    (chunk,) = decode(relay.feed(WITH_USAGE))
    assert (
        isinstance(chunk, dict) and "usage" not in chunk and chunk["choices"][0]["delta"] == {"content": "x"}
    )
    assert relay.usage == {"total_tokens": 3}  # still known, for the record
    assert relay.finish() == [b"data: [DONE]\n\n"]


def test_usage_on_the_finish_chunk_becomes_openais_last_chunk() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    relay.feed(CHUNK)
    (finish,) = decode(relay.feed(FINISH_WITH_USAGE))
    assert isinstance(finish, dict) and finish["usage"] is None
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert relay.feed(b"[DONE]") == []
    usage, done = decode(relay.finish())
    assert usage == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"total_tokens": 3},
    }
    assert done == "[DONE]"


def test_a_separate_usage_chunk_is_moved_to_the_end() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    relay.feed(CHUNK)
    assert relay.feed(USAGE_ONLY) == []
    usage, _ = decode(relay.finish())
    assert isinstance(usage, dict) and usage["usage"] == {"total_tokens": 3} and usage["choices"] == []


def test_without_upstream_usage_the_estimate_is_sent_and_the_output_kept() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    relay.feed(ROLE)
    relay.feed(CHUNK)
    assert relay.output() == "hi"
    estimate = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    usage, _ = decode(relay.finish(estimate))
    assert isinstance(usage, dict) and usage["usage"] == estimate and usage["id"] == "c"
    # A client that did not ask gets no usage chunk, estimated or not.
    quiet = StreamRelay(include_usage=False, classify=never)
    quiet.feed(CHUNK)
    assert quiet.finish(estimate) == [b"data: [DONE]\n\n"]


def test_chunks_without_content_are_held_until_content() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    assert relay.feed(ROLE) == []
    empty = b'{"id":"c","choices":[{"index":0,"delta":{"content":""}}]}'
    assert relay.feed(empty) == []
    assert not relay.content
    frames = relay.feed(CHUNK)
    assert [data(f) for f in frames] == [ROLE, empty, CHUNK]
    assert relay.content


def test_a_finish_counts_as_content() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    relay.feed(ROLE)
    assert len(relay.feed(b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')) == 2


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"status":"449","msg":"busy","body":null}', "concurrency_limit_exceeded"),
        (b'{"choices":[{"index":0,"delta":{},"finish_reason":"network_error"}]}', "upstream_error"),
        (b'{"choices":[7]}', "upstream_error"),
    ],
    ids=["business-error", "network-error", "wrongly-typed-choices"],
)
def test_an_error_before_content_ends_the_stream_and_sends_nothing(payload: bytes, code: str) -> None:
    def classify(payload: object) -> GatewayError | None:
        if isinstance(payload, dict) and payload.get("status") == "449":
            return UpstreamConcurrencyLimited("busy")
        return None

    relay = StreamRelay(include_usage=True, classify=classify)
    assert relay.feed(ROLE) == []
    assert relay.feed(payload) == []
    assert relay.failure is not None and relay.failure.code == code
    assert relay.ended and relay.feed(CHUNK) == []


def test_an_error_after_content_ends_with_an_error_event() -> None:
    relay = StreamRelay(include_usage=True, classify=lambda _: UpstreamConcurrencyLimited("busy"))
    relay.feed(CHUNK)
    assert relay.feed(b'{"status":"449","msg":"busy","body":null}') == []
    error, done = decode(relay.finish())
    assert isinstance(error, dict) and error["error"]["code"] == "concurrency_limit_exceeded"
    assert done == "[DONE]"


def test_nothing_after_done() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    relay.feed(CHUNK)
    assert relay.feed(b"[DONE]") == []
    assert relay.ended and relay.feed(CHUNK) == []


def test_garbage_is_skipped() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    assert relay.feed(b"not json") == []
    assert relay.feed(b"[1, 2]") == []
    assert not relay.content and relay.failure is None


def test_carries_content() -> None:
    assert not carries_content({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    assert not carries_content({"choices": [], "usage": {"total_tokens": 1}})
    assert carries_content({"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]})
    assert carries_content({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]})
    assert carries_content({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})


@pytest.mark.parametrize(
    ("choices", "problem"),
    [
        ([{"message": 5}, 7], "choice 0 has no message object"),
        ([{"message": {"content": "x"}}, 7], "choice 1 is not an object"),
        ([{"message": {"content": 5}}], "the content of choice 0 is neither text nor a list of parts"),
        ([{"message": {"content": None, "tool_calls": {}}}], "the tool_calls of choice 0 are not a list"),
        ("x", "it has no choices"),
        ([{"message": {"content": None, "tool_calls": []}}], None),
        ([{"message": {"content": [{"type": "text", "text": "x"}]}}], None),
    ],
)
def test_malformed(choices: object, problem: str | None) -> None:
    assert malformed({"choices": choices}) == problem


def test_completion_as_chunks() -> None:
    completion = {
        "id": "x",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "tool_calls": [{"id": "t", "function": {"name": "f"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"total_tokens": 2},
    }
    frames = decode(completion_as_chunks(completion, include_usage=True))
    first, finish, usage, done = frames
    assert isinstance(first, dict) and first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["content"] == "hi"
    assert first["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert isinstance(finish, dict) and finish["choices"][0]["finish_reason"] == "tool_calls"
    assert finish["usage"] is None and first["usage"] is None
    assert isinstance(usage, dict) and usage["usage"] == {"total_tokens": 2} and usage["choices"] == []
    assert done == "[DONE]"
    assert len(completion_as_chunks(completion, include_usage=False)) == 3
