"""Each dialect's stream translator is a ``StreamTranslator``: feed, finish and error, nothing else,
so one stream loop serves every API. The annotated list below is the proof mypy checks; the tests
show the loop's three calls give each API a whole stream, opened by the first ``feed``."""

from __future__ import annotations

from typing import Any

import pytest

from iflow2api.dialects.anthropic.stream import StreamTranslator as AnthropicTranslator
from iflow2api.dialects.responses.request import parse_request
from iflow2api.dialects.responses.stream import StreamTranslator as ResponsesTranslator
from iflow2api.dialects.translator import StreamTranslator
from iflow2api.errors import UpstreamError


def translators() -> list[StreamTranslator]:
    return [
        AnthropicTranslator(model="claude-x", message_id="msg_1"),
        ResponsesTranslator(
            request=parse_request(b'{"model": "glm-4.7", "input": "hi", "stream": true}'),
            response_id="resp_1",
            created_at=1,
        ),
    ]


#: Per translator: the events the first feed opens with, and the last event of a stream ended
#: well, and of one ended by an error.
EXPECTED = [
    (["message_start", "ping"], "message_stop", "error"),
    (["response.created", "response.in_progress"], "response.completed", "response.failed"),
]
CHUNK: dict[str, Any] = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}


def kinds(frames: list[bytes]) -> list[str]:
    return [frame.split(b"\n", 1)[0].removeprefix(b"event: ").decode() for frame in frames]


@pytest.mark.parametrize("which", range(2))
def test_the_first_feed_opens_the_stream_and_finish_ends_it(which: int) -> None:
    translator = translators()[which]
    opening, finished, _ = EXPECTED[which]
    first = kinds(translator.feed(CHUNK))
    assert first[: len(opening)] == opening and len(first) > len(opening)
    assert not set(opening) & set(kinds(translator.feed(CHUNK)))
    assert kinds(translator.finish())[-1] == finished
    assert translator.finish() == []  # a stream ends once


@pytest.mark.parametrize("which", range(2))
def test_an_error_before_any_chunk_still_opens_the_stream(which: int) -> None:
    translator = translators()[which]
    opening, _, failed = EXPECTED[which]
    frames = kinds(translator.error(UpstreamError("gone")))
    assert frames[-1] == failed
    if which == 1:  # Responses needs its opening events before a failure can be told
        assert frames[:2] == opening
