"""The SSE decoder's cost and memory: linear in what it is fed, and a line it waits on is capped."""

from __future__ import annotations

import pytest

from iflow2api.errors import UpstreamError, UpstreamTooLarge
from iflow2api.sse import MAX_LINE, SSEDecoder


class Uncopyable(bytes):
    """A piece of the stream that fails the test if the decoder concatenates it with ``+``.

    The quadratic decoder did ``buffer + chunk`` on every chunk, copying the whole line so far each
    time; a decoder that keeps the pieces and joins them once per line never adds two of them.
    """

    def __add__(self, other: object) -> bytes:
        raise AssertionError("a piece was copied onto the buffer")

    def __radd__(self, other: object) -> bytes:
        raise AssertionError("the buffer was copied to append a piece")


def test_a_line_fed_in_many_pieces_is_not_copied_per_piece() -> None:
    decoder = SSEDecoder()
    pieces = [Uncopyable(b"data: ")] + [Uncopyable(b"x" * 7) for _ in range(5000)]
    for piece in pieces:
        assert decoder.feed(piece) == []
    assert decoder.feed(Uncopyable(b"\n\n")) == [b"x" * 35000]


def test_a_line_fed_in_pieces_with_crlf_between_them() -> None:
    decoder = SSEDecoder()
    events: list[bytes] = []
    for piece in (b"data: a", b"b", b"c\r", b"\n", b"\r", b"\ndata: d\r", b"\r"):
        events += decoder.feed(Uncopyable(piece))
    assert events + decoder.finish() == [b"abc", b"d"]


def test_a_line_longer_than_the_cap_is_refused_while_it_arrives() -> None:
    decoder = SSEDecoder(max_line=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(UpstreamTooLarge) as caught:
        decoder.feed(b"x" * 200)
    assert isinstance(caught.value, UpstreamError) and caught.value.status == 502


def test_a_line_that_ends_beyond_the_cap_is_refused() -> None:
    decoder = SSEDecoder(max_line=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(UpstreamTooLarge):
        decoder.feed(b"x" * 200 + b"\n\n")


def test_lines_up_to_the_cap_pass() -> None:
    decoder = SSEDecoder(max_line=1000)
    line = b"data: " + b"y" * 994
    assert decoder.feed(line[:500]) == []
    assert decoder.feed(line[500:] + b"\n\n") == [b"y" * 994]
    assert decoder.feed(line + b"\n\n" + line + b"\n\n") == [b"y" * 994] * 2


def test_the_default_cap() -> None:
    assert SSEDecoder()._max_line == MAX_LINE == 16 * 1024 * 1024
