"""A late error (after keep-alive pings, or content a stop cut short) is the translator's ``error``,
the same way for every API (``services.streams.late_error``)."""

from __future__ import annotations

from iflow2api.dialects.openai_chat.errors import error_frame
from iflow2api.dialects.responses.request import parse_request
from iflow2api.errors import GatewayError, UpstreamError
from iflow2api.routes.chat import _late_error as chat_late_error
from iflow2api.routes.messages import AnthropicSink
from iflow2api.routes.responses import ResponsesSink
from iflow2api.services.response_memory import ResponseMemory
from iflow2api.services.streams import late_error
from iflow2api.sse import DONE_FRAME


async def _nowhere(message: object) -> None:
    raise AssertionError("nothing is sent here")


class Recorded:
    """A translator that only notes the errors it was asked to write."""

    def __init__(self) -> None:
        self.errors: list[GatewayError] = []

    def feed(self, chunk: dict[str, object]) -> list[bytes]:
        return []

    def finish(self) -> list[bytes]:
        return []

    def error(self, error: GatewayError) -> list[bytes]:
        self.errors.append(error)
        return [b"one ", b"two"]


def test_late_error_joins_the_translators_error_frames() -> None:
    translator = Recorded()
    error = UpstreamError("gone")
    assert late_error(lambda: translator)(error) == b"one two"
    assert translator.errors == [error]


def test_chat_ends_with_an_error_frame_and_done() -> None:
    error = UpstreamError("gone")
    assert chat_late_error(error) == error_frame(error) + DONE_FRAME


def test_anthropic_writes_its_error_event_with_a_fresh_translator() -> None:
    sink = AnthropicSink(_nowhere, model="claude-x")
    frames = late_error(sink.late_translator)(UpstreamError("gone"))
    assert frames.startswith(b"event: error\n")
    assert late_error(sink.late_translator)(UpstreamError("gone")) == frames


def test_responses_continues_the_stream_that_started() -> None:
    request = parse_request(b'{"model": "glm-4.7", "input": "hi", "stream": true}')
    memory = ResponseMemory(max_bytes=1000, save=lambda rid, history: None, load=_no_history)
    sink = ResponsesSink(_nowhere, memory, request, {"model": "glm-4.7", "messages": []})
    before = sink.late_translator()
    assert before is not sink.late_translator()  # no stream yet: a fresh one each time
    stream = sink.translator()
    assert sink.late_translator() is stream
    frames = late_error(sink.late_translator)(UpstreamError("gone"))
    assert b"response.failed" in frames
    assert sink.response_id.encode() in frames


async def _no_history(response_id: str) -> None:
    return None
