"""Server-sent events, sans I/O: bytes in, events out, and the few frames we write.

The iFlow upstream writes ``data:`` with or without a space after the colon (protocol §7.2), so the
decoder accepts both; everything we emit uses the canonical ``data: <payload>\\n\\n``.

>>> decoder = SSEDecoder()
>>> decoder.feed(b'data:{"a":1}\\n\\ndata: [DO')
[b'{"a":1}']
>>> decoder.feed(b'NE]\\n\\n')
[b'[DONE]']
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from iflow2api.errors import UpstreamTooLarge

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"

#: The longest line the decoder waits on. An event of a chat stream is a JSON chunk of a few hundred
#: bytes; 16 MiB leaves room for a whole file in one tool call and still bounds what a broken or
#: hostile upstream can make the gateway hold (the answer as a whole is capped by
#: ``max_upstream_body``, so that is the limit when it is smaller).
MAX_LINE = 16 * 1024 * 1024


def frame(data: bytes) -> bytes:
    """One SSE event carrying ``data`` (each of its lines gets its own ``data:``)."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    return b"data: " + data + b"\n\n"


def event(kind: str, payload: Mapping[str, object]) -> bytes:
    """One named event, as Anthropic Messages and OpenAI Responses stream them: the ``event:`` line
    names it and the JSON repeats the name as ``type``, first, before ``payload``'s fields.

    >>> event("ping", {})
    b'event: ping\\ndata: {"type":"ping"}\\n\\n'
    """
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class SSEDecoder:
    """Collects the ``data`` of each event; comments, ``event:``, ``id:`` and ``retry:`` are dropped.

    Linear in what it is fed: the pieces of an unfinished line are kept as they came and joined
    once, when the line ends (appending each piece to a buffer would copy the line so far every
    time, and one long line would cost quadratic time). A line longer than ``max_line`` raises
    ``UpstreamTooLarge``.
    """

    __slots__ = ("_data", "_max_line", "_partial", "_partial_size", "_skip_lf")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._partial: list[bytes] = []
        self._partial_size = 0
        #: The last piece ended with CR: a LF starting the next one belongs to the same line end.
        self._skip_lf = False
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            # CRLF and lone CR are both line ends in SSE.
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()
        events: list[bytes] = []
        if lines:
            if self._partial:
                lines[0] = self._complete(lines[0])
            for line in lines:
                self._line(line, events)
        if rest:
            self._hold(rest)
        return events

    def finish(self) -> list[bytes]:
        """Events still pending when the stream ends without its final blank line."""
        events: list[bytes] = []
        if self._partial:
            self._line(self._complete(b""), events)
        self._line(b"", events)
        return events

    def _hold(self, piece: bytes) -> None:
        self._partial_size += len(piece)
        if self._partial_size > self._max_line:
            self._refuse()
        self._partial.append(piece)

    def _complete(self, end: bytes) -> bytes:
        """The held pieces and ``end`` as one line, and nothing held any more."""
        if self._partial_size + len(end) > self._max_line:
            self._refuse()
        self._partial.append(end)
        line = b"".join(self._partial)
        self._partial = []
        self._partial_size = 0
        return line

    def _refuse(self) -> None:
        self._partial = []
        self._partial_size = 0
        raise UpstreamTooLarge(
            f"The upstream's stream has a line longer than {self._max_line} bytes; it was not read further."
        )

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
