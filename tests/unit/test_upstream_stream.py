"""The one normaliser of the upstream's event stream (``services.upstream_stream``): pure, so
tested with literal bytes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from iflow2api.errors import GatewayError, UpstreamError, UpstreamTooLarge
from iflow2api.services.upstream_stream import UpstreamStream
from iflow2api.sse import MAX_LINE


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


ROLE = event({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
TEXT = event({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi there"}}]})
THINK = event({"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "Hm."}}]})
FINISH = event({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = event({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
ERROR = event({"error": {"message": "boom", "code": "server_error"}})
BROKEN = event({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "network_error"}]})
DONE = b"data: [DONE]\n\n"


def stream(classify: Any = None) -> UpstreamStream:
    if classify is None:

        def classify(payload: object) -> GatewayError | None:
            if isinstance(payload, dict) and "error" in payload:
                return UpstreamError(str(payload["error"]["message"]))
            return None

    return UpstreamStream(classify=classify)


def test_chunks_without_content_are_held_until_content_arrives() -> None:
    upstream = stream()
    assert upstream.feed(ROLE) == []
    chunks = upstream.feed(TEXT)
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant"},
        {"content": "Hi there"},
    ]
    assert upstream.content


def test_bytes_split_anywhere_give_the_same_chunks() -> None:
    whole = ROLE + TEXT + FINISH + DONE
    upstream = stream()
    chunks = [chunk for i in range(len(whole)) for chunk in upstream.feed(whole[i : i + 1])]
    assert len(chunks) == 3 and upstream.ended


def test_an_error_before_content_fails_with_nothing_handed_out() -> None:
    upstream = stream()
    assert upstream.feed(ROLE + ERROR) == []
    assert isinstance(upstream.failure, UpstreamError) and upstream.ended
    assert not upstream.content


def test_chunks_before_an_error_in_the_same_read_are_handed_out_first() -> None:
    upstream = stream()
    chunks = upstream.feed(TEXT + BROKEN)
    assert len(chunks) == 1
    assert upstream.failure is not None and "network_error" in upstream.failure.message


def test_usage_is_found_and_the_text_is_kept_only_until_then() -> None:
    upstream = stream()
    upstream.feed(TEXT)
    assert upstream.usage is None and upstream.output.text() == "Hi there"
    upstream.feed(FINISH + USAGE)
    assert upstream.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert upstream.output.text() == ""


def test_reasoning_rebuilds_the_turn() -> None:
    upstream = stream()
    upstream.feed(THINK + TEXT + FINISH + DONE)
    turn = upstream.turn.message()
    assert turn is not None
    assert (turn["content"], turn["reasoning_content"]) == ("Hi there", "Hm.")


def test_what_follows_done_is_not_read_and_an_empty_stream_is_an_error() -> None:
    upstream = stream()
    assert upstream.feed(DONE + TEXT) == []
    assert upstream.ended
    with pytest.raises(UpstreamError, match="without sending anything"):
        upstream.finish()


def test_an_event_line_beyond_the_cap_is_a_failure() -> None:
    upstream = stream()
    upstream.feed(b"data: " + b"x" * (MAX_LINE + 10))
    assert isinstance(upstream.failure, UpstreamTooLarge)


def test_payloads_that_are_not_chunks_are_passed_over() -> None:
    upstream = stream()
    assert upstream.feed(b"data: not json\n\n" + b"data: [1, 2]\n\n" + event({"id": "c"})) == []
    assert upstream.failure is None
