"""The upstream's event stream, normalised: the one place its chunks are parsed and judged.

Pure: bytes in, chunk dicts out, no I/O (the loop that reads the socket is ``services.streams``).
Each ``data`` payload is decoded from SSE and parsed once; here alone a stream's in-band errors
(an error object, a business error, iFlow's ``network_error``), its usage and its reasoning
(``reasoning.StreamedTurn``) are found. The raw byte pass-through of ``/v1/chat/completions``
(``dialects.openai_chat.stream.StreamRelay``) is the fast path beside it, for when nothing needs parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from iflow2api.dialects.openai_chat import stream as chat_chunks
from iflow2api.errors import GatewayError, UpstreamError
from iflow2api.providers.base import ChunkRewriter
from iflow2api.reasoning import StreamedTurn
from iflow2api.sse import DONE, SSEDecoder

#: A profile's reading of a payload that may be an error in disguise (``Profile.business_error``).
Classify = Callable[[object], GatewayError | None]


class UpstreamStream:
    """Feeds on the upstream's raw bytes; hands out the chunks worth passing on.

    Chunks without content (a role alone) are held back until content or a finish arrives, so an
    error right after them still fails before anything was sent: another account can take the
    request. A stream's own error (or an event line beyond ``sse.MAX_LINE``) ends it: ``feed``
    hands out the chunks before it and keeps it as ``failure``, for the loop to raise once those
    are out. ``usage`` is the last
    usage the upstream reported, and ``output`` what the model wrote until then (for an estimate).

    >>> stream = UpstreamStream(classify=lambda payload: None)
    >>> stream.feed(b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\\n\\n')
    []
    >>> len(stream.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\\n\\n'))
    2
    """

    __slots__ = (
        "_classify",
        "_decoder",
        "_held",
        "_rewriter",
        "content",
        "ended",
        "failure",
        "output",
        "turn",
        "usage",
    )

    def __init__(self, *, classify: Classify, rewriter: ChunkRewriter | None = None) -> None:
        self._classify = classify
        #: The host's chunks into the gateway's shape, when its profile has a rewriter.
        self._rewriter = rewriter
        self._decoder = SSEDecoder()
        self._held: list[dict[str, Any]] = []
        #: Whether content has been seen (and handed out, with what was held before it).
        self.content = False
        #: Whether the upstream said ``[DONE]``, or the stream failed: what follows is not read.
        self.ended = False
        #: Why the stream failed, when it said so itself.
        self.failure: GatewayError | None = None
        #: The upstream's usage, the last one seen; None until it reports any.
        self.usage: dict[str, Any] | None = None
        #: What the model wrote, kept until usage arrives.
        self.output = chat_chunks.OutputText()
        #: The assistant turn, rebuilt when it shows reasoning (for ``ReasoningStore``).
        self.turn = StreamedTurn()

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        """The chunks ``raw`` completes that may go to the client (before a ``failure``)."""
        chunks: list[dict[str, Any]] = []
        try:
            for data in self._decoder.feed(raw):
                if data == DONE:
                    chunks.extend(self.flush())
                    self.ended = True  # an empty stream is an error (``finish``)
                    break
                chunks.extend(self._take(data))
        except GatewayError as error:
            self.failure = error
            self.ended = True
        return chunks

    def flush(self) -> list[dict[str, Any]]:
        """What the rewriter still held when the stream ended (with or without ``[DONE]``)."""
        rewriter, self._rewriter = self._rewriter, None
        if rewriter is None:
            return []
        return [
            taken for chunk in rewriter.finish() for taken in self._take_chunk(orjson.dumps(chunk), chunk)
        ]

    def _take(self, data: bytes) -> list[dict[str, Any]]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if self._rewriter is None:
            return self._take_chunk(data, chunk)
        # Errors are judged as the host sent them, before the rewriter sees the chunk.
        failure = chat_chunks.chunk_failure(chunk, self._classify)
        if failure is not None:
            raise failure
        return [
            taken
            for rewritten in self._rewriter.feed(chunk)
            for taken in self._take_chunk(orjson.dumps(rewritten), rewritten)
        ]

    def _take_chunk(self, data: bytes, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        failure = chat_chunks.chunk_failure(chunk, self._classify)
        if failure is not None:
            raise failure
        if not isinstance(chunk.get("choices"), list):
            return []  # no choices, and no error either: nothing to pass on
        self.turn.feed(data, chunk)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
            self.output.clear()
        elif self.usage is None:
            self.output.feed(data)
        if self.content:
            return [chunk]
        self._held.append(chunk)
        if not chat_chunks.carries_content(chunk):
            return []
        self.content = True
        held, self._held = self._held, []
        return held

    def finish(self) -> None:
        """Check the stream that ended: one without content is an error."""
        if not self.content:
            raise UpstreamError("The upstream ended the stream without sending anything.")
