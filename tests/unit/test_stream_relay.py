from __future__ import annotations

import json

from iflow2api.dialects.openai_chat import StreamRelay, completion_as_chunks
from iflow2api.errors import GatewayError, UpstreamConcurrencyLimited

CHUNK = b'{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}'
USAGE_ONLY = b'{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":3}}'
WITH_USAGE = b'{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"total_tokens":3}}'


def never(payload: object) -> GatewayError | None:
    return None


def decode(frames: list[bytes]) -> list[object]:
    return [json.loads(f[6:]) if f != b"data: [DONE]\n\n" else "[DONE]" for f in frames]


def test_chunks_pass_byte_for_byte_when_usage_is_wanted() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    assert relay.feed(CHUNK) == [b"data: " + CHUNK + b"\n\n"]
    assert relay.feed(USAGE_ONLY) == [b"data: " + USAGE_ONLY + b"\n\n"]


def test_usage_is_dropped_when_not_asked_for() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    assert relay.feed(USAGE_ONLY) == []
    (chunk,) = decode(relay.feed(WITH_USAGE))
    assert (
        isinstance(chunk, dict) and "usage" not in chunk and chunk["choices"][0]["delta"] == {"content": "x"}
    )


def test_done_once_and_nothing_after() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    assert relay.feed(b"[DONE]") == [b"data: [DONE]\n\n"]
    assert relay.feed(CHUNK) == []
    assert relay.finish() == []


def test_missing_done_is_supplied_by_finish() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    relay.feed(CHUNK)
    assert relay.finish() == [b"data: [DONE]\n\n"]


def test_business_error_inside_the_stream_ends_it() -> None:
    def classify(payload: object) -> GatewayError | None:
        return (
            UpstreamConcurrencyLimited("busy")
            if isinstance(payload, dict) and payload.get("status")
            else None
        )

    relay = StreamRelay(include_usage=True, classify=classify)
    error, done = decode(relay.feed(b'{"status":"449","msg":"busy","body":null}'))
    assert isinstance(error, dict) and error["error"]["code"] == "concurrency_limit_exceeded"
    assert done == "[DONE]"
    assert relay.done


def test_network_error_finish_reason_becomes_an_error_event() -> None:
    relay = StreamRelay(include_usage=True, classify=never)
    frames = decode(relay.feed(b'{"choices":[{"index":0,"delta":{},"finish_reason":"network_error"}]}'))
    assert isinstance(frames[0], dict) and frames[0]["error"]["code"] == "upstream_error"
    assert frames[1] == "[DONE]"


def test_garbage_is_skipped() -> None:
    relay = StreamRelay(include_usage=False, classify=never)
    assert relay.feed(b"not json") == []
    assert relay.chunks == 0


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
    assert isinstance(usage, dict) and usage["usage"] == {"total_tokens": 2} and usage["choices"] == []
    assert done == "[DONE]"
    assert len(completion_as_chunks(completion, include_usage=False)) == 3
