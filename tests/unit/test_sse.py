from __future__ import annotations

import pytest

from iflow2api.sse import SSEDecoder, frame


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([b'data: {"a":1}\n\n'], [b'{"a":1}']),
        ([b'data:{"a":1}\n\n'], [b'{"a":1}']),
        ([b"data: [DONE]\r\n\r\n"], [b"[DONE]"]),
        ([b"da", b"ta: x\n", b"\n"], [b"x"]),
        ([b"data: one\ndata: two\n\n"], [b"one\ntwo"]),
        ([b": ping\n\nevent: message\nid: 3\ndata: y\n\n"], [b"y"]),
        ([b"data: a\r", b"\n\r\ndata: b\n\n"], [b"a", b"b"]),
        ([b"data:  two spaces\n\n"], [b" two spaces"]),
    ],
)
def test_decoder(pieces: list[bytes], expected: list[bytes]) -> None:
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    assert events + decoder.finish() == expected


def test_finish_flushes_an_unterminated_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.finish() == [b"tail"]


def test_frame() -> None:
    assert frame(b"{}") == b"data: {}\n\n"


def test_frame_prefixes_every_line() -> None:
    assert frame(b"a\nb") == b"data: a\ndata: b\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(frame(b"one\ntwo")) == [b"one\ntwo"]
