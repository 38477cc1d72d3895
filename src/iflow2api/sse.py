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

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


def frame(data: bytes) -> bytes:
    """One SSE event carrying ``data`` (each of its lines gets its own ``data:``)."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    return b"data: " + data + b"\n\n"


class SSEDecoder:
    """Collects the ``data`` of each event; comments, ``event:``, ``id:`` and ``retry:`` are dropped."""

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # CRLF and lone CR are both line ends in SSE; normalise unless a CR may start a CRLF pair.
            if buffer.endswith(b"\r"):
                self._buffer = buffer
                return []
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[bytes] = []
        for line in lines:
            self._line(line, events)
        return events

    def finish(self) -> list[bytes]:
        """Events still pending when the stream ends without its final blank line."""
        events: list[bytes] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
